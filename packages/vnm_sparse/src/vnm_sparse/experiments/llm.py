"""SmolLM2-135M at 64:2:5: one-shot RIA against training-free 2:4, then three-staged vs fixed-mask LoRA.

Paper: Sec. 4.3 / Table 4 (Llama2-7B, 64:2:5, three-staged LoRA vs training-free 2:4). Here: the real
SmolLM2-135M-Instruct (``papercommon.data.load_smollm2``), perplexity on held-out news text (the last
10% of the Lee corpus), calibration and LoRA data from the first 90%.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from pathlib import Path

import torch

from vnm_sparse.config import ThreeStageLoRAConfig, VNMConfig
from vnm_sparse.lora import three_stage_lora
from vnm_sparse.modules import collect_act_norms, prune_
from vnm_sparse.permute import permute_model_

SETTINGS = {
    # quick: one-shot only (a LoRA step of SmolLM2 takes tens of seconds on 2 shared CPU cores)
    True: {"eval_tokens": 512, "calib": (2, 128), "lora_steps": 0, "lora_batch": (1, 128), "permute": False},
    False: {"eval_tokens": 1024, "calib": (4, 128), "lora_steps": 16, "lora_batch": (1, 128), "permute": True},
}


def _tokens():
    from papercommon.data import text_corpus

    return text_corpus("lee")


def run_llm(quick: bool = True, out: Path | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Run the SmolLM2 experiment; returns a dict of perplexities and LoRA histories.

    With ``out`` the partial results are written to ``out/llm_partial.json`` after every stage.
    """
    from papercommon.data import load_smollm2
    from papercommon.metrics import perplexity

    st = SETTINGS[quick]
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model, tok = load_smollm2()
    ids = tok(_tokens(), return_tensors="pt").input_ids[0]
    split = int(0.9 * len(ids))
    train_ids, test_ids = ids[:split], ids[split:]
    ppl = lambda m: perplexity(m, test_ids, context=256, max_tokens=st["eval_tokens"], batch_size=2)
    nb, sl = st["calib"]
    calib = [train_ids[i * sl:(i + 1) * sl][None] for i in range(nb)]
    res: dict = {"settings": st, "seed": seed, "ppl": {}}

    def save() -> None:
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "llm_partial.json").write_text(json.dumps(res, indent=1, default=str))

    res["ppl"]["dense"] = ppl(model)
    save()
    norms = collect_act_norms(model, calib)
    vnm = VNMConfig(v=64, m=5, score="ria", pad=True)
    two4 = VNMConfig(v=64, m=4, score="ria", pad=True)
    m24 = copy.deepcopy(model)
    prune_(m24, two4, act_norms=norms)
    res["ppl"]["2:4 ria"] = ppl(m24)
    save()
    del m24
    m5 = copy.deepcopy(model)
    prune_(m5, vnm, act_norms=norms)
    res["ppl"]["64:2:5 ria"] = ppl(m5)
    save()
    del m5
    steps = st["lora_steps"]
    if steps:
        bsz, bl = st["lora_batch"]
        g = torch.Generator().manual_seed(seed)

        def batches():
            while True:
                starts = torch.randint(0, len(train_ids) - bl - 1, (bsz,), generator=g)
                yield torch.stack([train_ids[s:s + bl] for s in starts.tolist()])

        loss_fn = lambda m, x: m(input_ids=x, labels=x).loss
        lcfg = ThreeStageLoRAConfig(total_steps=steps, dense_frac=0.1, dynamic_frac=0.2, mask_interval=1,
                                    lam=2e-4, rank=16, alpha=32.0, lr=1e-3)
        res["lora_config"] = lcfg.to_dict()
        for mode in ("three_stage", "fixed"):
            torch.manual_seed(seed)
            g.manual_seed(seed)  # same data order for both runs
            mm, _, hist = three_stage_lora(copy.deepcopy(model), vnm, lcfg, itertools.islice(batches(), steps),
                                           loss_fn, act_norms=norms, mode=mode, progress=progress)
            res["ppl"][f"64:2:5 lora {mode}"] = ppl(mm)
            res[f"history_{mode}"] = hist.to_dict()
            save()
            del mm
    if st["permute"]:
        mp = copy.deepcopy(model)
        tp = time.perf_counter()
        rep = permute_model_(mp, vnm, act_norms=norms, iters=1)
        res["permute_seconds"] = time.perf_counter() - tp
        res["permute_retained"] = {k: v for k, v in rep.items() if k == "residual"}
        res["permute_gain"] = sum(v["after"] for v in rep.values()) / sum(v["before"] for v in rep.values()) - 1
        prune_(mp, vnm, act_norms=collect_act_norms(mp, calib))
        res["ppl"]["64:2:5 ria + permutation"] = ppl(mp)
        save()
        del mp
    res["seconds"] = time.perf_counter() - t0
    save()
    return res
