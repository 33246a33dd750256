"""Render the README's reproduction tables from the committed records in ``results/``.

    uv run python packages/flatquant/benchmarks/tables.py
"""

import json
from pathlib import Path

R = Path(__file__).resolve().parents[1] / "results"
PAPER = {"fp": (6.14, 5.47), "rtn-w4a4kv4": ("-", "-"), "smoothquant-w4a4kv4": (210.19, 83.12),
         "quarot-w4a4kv4": (10.60, 8.56), "flatquant-w4a4kv4": (6.98, 5.79)}


def load(p: Path) -> dict:
    return json.loads(p.read_text())


def smollm2() -> str:
    rows = ["| Method | Paper PPL Llama-3-8B / Llama-2-7B (WikiText-2) | Ours PPL SmolLM2-135M (Lee) | x FP | "
            "block MSE | calibration | seeds | record |", "|---|---|---|---|---|---|---|---|"]
    fp = load(R / "smollm2/smollm2-fp.record.json")["metrics"]["ppl"]
    for name in ("fp", "rtn-w4a4kv4", "smoothquant-w4a4kv4", "quarot-w4a4kv4", "flatquant-w4a4kv4", "rtn-w4a16",
                 "rtn-w8a8"):
        f = R / f"smollm2/smollm2-{name}.record.json"
        if not f.exists():
            continue
        d = load(f)
        m, c = d["metrics"], d["config"]
        s = c["settings"]
        cal = "-" if name == "fp" else f"{s['nsamples']}x{s['seqlen']} tok, {s['epochs']} ep"
        paper = PAPER.get(name, ("-", "-"))
        mse = f"{m['mean_block_mse']:.3g}" if "mean_block_mse" in m else "-"
        rows.append(f"| {name} | {paper[0]} / {paper[1]} | {m['ppl']:.2f} | {m['ppl'] / fp:.2f} | {mse} | {cal} | 1 "
                    f"| `results/smollm2/{f.name}` |")
    return "\n".join(rows)


def ablation() -> str:
    rows = ["| Step | Paper (Table 5, Llama-3-8B W4A4 PPL: each step lowers it) | Ours PPL SmolLM2 | block MSE | seeds | record |",
            "|---|---|---|---|---|---|"]
    # Table 5's intermediate values are not quoted here (not verified against the paper text); the full
    # method's 6.98 is Table 1's Llama-3-8B W4A4KV4 number.
    paper = {"transform": "higher", "transform+diag": "lower", "transform+diag+clip": "lowest (6.98)"}
    for name in ("transform", "transform+diag", "transform+diag+clip"):
        f = R / f"ablation/ablation-{name}.record.json"
        if name == "transform+diag+clip" and not f.exists():
            f = R / "smollm2/smollm2-flatquant-w4a4kv4.record.json"
        if not f.exists():
            continue
        m = load(f)["metrics"]
        rows.append(f"| {name} | {paper[name]} | {m['ppl']:.2f} | {m['mean_block_mse']:.3g} | 1 | "
                    f"`results/{f.parent.name}/{f.name}` |")
    return "\n".join(rows)


def minilm() -> str:
    f = R / "minilm/minilm-embeddings.record.json"
    m = load(f)["metrics"]
    rows = ["| Method (W4A4KV4) | cosine to FP embedding | Lee Spearman (FP: "
            f"{m['fp']['spearman']:.3f}) | block MSE | seeds | record |", "|---|---|---|---|---|---|"]
    for k in ("rtn", "smoothquant", "quarot", "flatquant"):
        rows.append(f"| {k} | {m[k]['cosine_to_fp']:.3f} | {m[k]['spearman']:.3f} | {m[k]['mean_block_mse']:.3g} | 1 "
                    f"| `results/minilm/{f.name}` |")
    return "\n".join(rows)


def overhead() -> str:
    out = []
    for f in sorted(R.glob("overhead-*.json")):
        m = load(f)["metrics"]
        out.append(f"| {f.stem} | {m['linear_ms']:.0f} | {m['kron_only_over_linear']:.2f} | "
                   f"{m['dense_only_over_linear']:.2f} | {m['kron_over_linear']:.2f} | {m['dense_over_linear']:.2f} | "
                   f"{m.get('fwht_over_linear', float('nan')):.2f} |")
    head = ["| shape | linear ms | Kronecker / linear | dense rotation / linear | Kronecker+quant / linear | "
            "dense+quant / linear | FWHT+quant / linear |", "|---|---|---|---|---|---|---|"]
    return "\n".join(head + out)


if __name__ == "__main__":
    for fn in (smollm2, ablation, minilm, overhead):
        print(f"### {fn.__name__}\n\n{fn()}\n")
