"""Three-staged vs fixed-mask LoRA on SmolLM2-135M at 64:2:5, scored on text it was not trained on.

Paper: Sec. 3.3 / Table 5 (three-staged LoRA on Llama2-7B). Here: the real SmolLM2-135M-Instruct
(``papercommon.data.load_smollm2``); LoRA trains on the first 90% of the Lee news corpus; perplexity is
measured on the held-out last 10% of Lee (same domain, unseen text) and on Python's reference
documentation (``pydoc``: another domain, never trained on). Stages 1 and 2 take 5% of the steps each
(the paper: at most 10% together); the mask is recomputed every 2 steps in stage 2.

One (mode, seed) run is one process: ``python -m vnm_sparse.experiments.lora_run --mode fixed --seed 0
--out DIR`` writes ``DIR/lora_<mode>_s<seed>.json`` (a papercommon record), so seeds and modes can run in
parallel; :func:`lora_runs` collects them and runs the missing ones.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path

import torch

from vnm_sparse.config import ThreeStageLoRAConfig, VNMConfig

STEPS = 240
BATCH = (1, 128)  # sequences x tokens per step
EVAL_TOKENS = 2048  # per corpus, context 256
CALIB = (4, 128)
VNM = VNMConfig(v=64, m=5, score="ria", pad=True)
LORA = ThreeStageLoRAConfig(total_steps=STEPS, dense_frac=0.05, dynamic_frac=0.05, mask_interval=2, lam=2e-4,
                            rank=16, alpha=32.0, lr=1e-3)


def _data():
    from papercommon.data import load_smollm2, text_corpus

    model, tok = load_smollm2()
    lee = tok(text_corpus("lee"), return_tensors="pt").input_ids[0]
    split = int(0.9 * len(lee))
    pydoc = tok(text_corpus("pydoc"), return_tensors="pt").input_ids[0]
    return model, lee[:split], {"lee_heldout": lee[split:], "pydoc": pydoc}


def _ppl(model, evals: dict) -> dict[str, float]:
    from papercommon.metrics import perplexity

    return {k: perplexity(model, ids, context=256, max_tokens=EVAL_TOKENS, batch_size=2) for k, ids in evals.items()}


def _norms(model, train_ids):
    from vnm_sparse.modules import collect_act_norms

    nb, sl = CALIB
    return collect_act_norms(model, [train_ids[i * sl:(i + 1) * sl][None] for i in range(nb)])


def baselines() -> dict[str, dict[str, float]]:
    """Perplexity of dense, training-free 2:4 RIA and one-shot 64:2:5 RIA on both evaluation texts."""
    from vnm_sparse.modules import prune_

    model, train_ids, evals = _data()
    norms = _norms(model, train_ids)
    out = {"dense": _ppl(model, evals)}
    for name, cfg in (("2:4 ria", VNMConfig(v=64, m=4, score="ria", pad=True)), ("64:2:5 ria", VNM)):
        m = copy.deepcopy(model)
        prune_(m, cfg, act_norms=norms)
        out[name] = _ppl(m, evals)
    return out


def run_one(mode: str, seed: int, steps: int = STEPS, progress: bool = True) -> dict:
    """One LoRA run; returns its config, perplexities, loss history and seconds."""
    from vnm_sparse.lora import three_stage_lora

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model, train_ids, evals = _data()
    norms = _norms(model, train_ids)
    bsz, bl = BATCH
    g = torch.Generator().manual_seed(seed)  # the data order: same for both modes at one seed

    def batches():
        while True:
            starts = torch.randint(CALIB[0] * CALIB[1], len(train_ids) - bl - 1, (bsz,), generator=g)
            yield torch.stack([train_ids[s:s + bl] for s in starts.tolist()])

    cfg = LORA.replace(total_steps=steps)
    mm, _, hist = three_stage_lora(model, VNM, cfg, itertools.islice(batches(), steps),
                                   lambda m, x: m(input_ids=x, labels=x).loss, act_norms=norms, mode=mode,
                                   progress=progress)
    return {"mode": mode, "seed": seed, "lora": cfg.to_dict(), "vnm": VNM.to_dict(), "batch": list(BATCH),
            "ppl": _ppl(mm, evals), "history": hist.to_dict(), "seconds": time.perf_counter() - t0}


def record_name(mode: str, seed: int) -> str:
    return f"lora_{mode}_s{seed}"


def lora_runs(out: Path, seeds: list[int], steps: int = STEPS) -> list[dict]:
    """The metrics of every (mode, seed) run, read from ``out`` when a finished record with the same
    settings is there (written by a parallel worker), otherwise run here and recorded."""
    from papercommon.records import jsonable, read_record, write_record

    res = []
    for seed in seeds:
        for mode in ("three_stage", "fixed"):
            path = Path(out) / f"{record_name(mode, seed)}.json"
            if path.exists():
                rec = read_record(path)
                if rec["metrics"]["lora"] == jsonable(LORA.replace(total_steps=steps)):
                    res.append(rec["metrics"])
                    continue
            m = run_one(mode, seed, steps)
            write_record(out, record_name(mode, seed), config={"mode": mode, "seed": seed, "steps": steps},
                         metrics=m)
            res.append(m)
    return res


def main(argv: list[str] | None = None) -> int:
    from papercommon.cli import nonnegative_int, positive_int
    from papercommon.records import write_record

    p = argparse.ArgumentParser(prog="python -m vnm_sparse.experiments.lora_run")
    p.add_argument("--mode", choices=("three_stage", "fixed", "baselines"), required=True,
                   help="a LoRA run, or 'baselines': dense / training-free 2:4 / one-shot 64:2:5 perplexities")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--steps", type=positive_int, default=STEPS)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.mode == "baselines":
        ppl = baselines()
        write_record(a.out, "lora_baselines", config={"vnm": VNM.to_dict(), "eval_tokens": EVAL_TOKENS}, metrics=ppl)
        print(json.dumps(ppl))
        return 0
    m = run_one(a.mode, a.seed, a.steps)
    write_record(a.out, record_name(a.mode, a.seed), config={"mode": a.mode, "seed": a.seed, "steps": a.steps},
                 metrics=m)
    print(json.dumps(m["ppl"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
