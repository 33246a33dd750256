"""SmolLM2-135M at 64:2:5, one-shot: RIA against training-free 2:4, with and without the channel permutation.

Paper: Sec. 3.2 (permutation) and Table 4 (Llama2-7B, 64:2:5 against training-free 2:4). Here: the real
SmolLM2-135M-Instruct (``papercommon.data.load_smollm2``) with the evaluation of
:mod:`vnm_sparse.experiments.lora_run`: perplexity on the held-out last 10% of the Lee news corpus and on
Python's reference documentation, 2,048 tokens each at context 256. The only random part of a one-shot
prune is its calibration data, so each seed draws its own 4 x 128-token windows from the first 90% of Lee.
The LoRA comparison lives in ``lora_run`` (the ``smollm2-lora`` reproduction).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

from vnm_sparse.config import VNMConfig
from vnm_sparse.experiments import lora_run
from vnm_sparse.modules import collect_act_norms, prune_
from vnm_sparse.permute import permute_model_

TWO4 = VNMConfig(v=64, m=4, score="ria", pad=True)


def run_llm(seed: int = 0, permute: bool = True, out: Path | None = None) -> dict:
    """Perplexities of dense, 2:4 RIA, 64:2:5 RIA and (``permute``) 64:2:5 RIA after the permutation.

    With ``out`` the partial results are written to ``out/llm_partial_s<seed>.json`` after every stage.
    """
    t0 = time.perf_counter()
    model, train_ids, evals = lora_run._data()
    nb, sl = lora_run.CALIB
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(train_ids) - sl, (nb,), generator=g).tolist()
    calib = [train_ids[s:s + sl][None] for s in starts]
    res: dict = {"seed": seed, "calib": [nb, sl], "calib_starts": starts, "eval_tokens": lora_run.EVAL_TOKENS,
                 "ppl": {}}

    def save() -> None:
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / f"llm_partial_s{seed}.json").write_text(json.dumps(res, indent=1, default=str))

    res["ppl"]["dense"] = lora_run._ppl(model, evals)
    norms = collect_act_norms(model, calib)
    for name, cfg in (("2:4 ria", TWO4), ("64:2:5 ria", lora_run.VNM)):
        m = copy.deepcopy(model)
        prune_(m, cfg, act_norms=norms)
        res["ppl"][name] = lora_run._ppl(m, evals)
        save()
        del m
    if permute:
        tp = time.perf_counter()
        rep = permute_model_(model, lora_run.VNM, act_norms=norms, iters=1)
        res["permute_seconds"] = time.perf_counter() - tp
        res["permute_gain"] = sum(v["after"] for v in rep.values()) / sum(v["before"] for v in rep.values()) - 1
        prune_(model, lora_run.VNM, act_norms=collect_act_norms(model, calib))
        res["ppl"]["64:2:5 ria + permutation"] = lora_run._ppl(model, evals)
    res["seconds"] = time.perf_counter() - t0
    save()
    return res
