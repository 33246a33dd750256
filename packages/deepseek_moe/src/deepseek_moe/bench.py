"""CPU benchmark of issue 17: the ``small`` preset, batch 8 x 256, against transformers' ``DeepseekV3ForCausalLM``
with the same weights, and against the time of the training step's GEMMs alone.

Every comparison is timed with :func:`papercommon.bench.interleaved` (round-robin in one process, medians of
>= 7 runs) and recorded with :func:`papercommon.bench.ratio_record`. ``benchmarks/cpu/deepseek_moe.py`` calls
:func:`records`; ``python -m deepseek_moe bench`` prints the same table.

Rows:

* ``forward``: no-grad forward, ours / transformers (target: >= 1.5x faster, time ratio <= 1/1.5);
* ``adamw_step``: forward + backward + AdamW step (ours: fused AdamW; transformers: the default AdamW);
* ``step_vs_gemm``: our step / the same step's GEMMs replayed alone (shapes recorded from one step;
  target <= 1.4);
* ``bf16_forward``: our forward under ``torch.autocast("cpu", bfloat16)`` / fp32 (a measured option; the
  note gives its logit error);
* ``decode_4k``: one decoding step at 4K context, absorbed latent cache / naive per-head cache.
"""

from __future__ import annotations

import tempfile
import time

import torch
from papercommon.bench import Record, interleaved, ratio_record
from torch.utils._python_dispatch import TorchDispatchMode

from deepseek_moe.checkpoint import load_pretrained
from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.modules.model import DeepSeekV3

BATCH, SEQ = 8, 256
ROWS = ("forward", "adamw_step", "step_vs_gemm", "bf16_forward", "decode_4k")


def _pair(cfg: DeepSeekV3Config):
    """transformers' model and ours with identical weights (ours read from the checkpoint transformers wrote)."""
    from transformers import DeepseekV3ForCausalLM

    torch.manual_seed(0)
    hf = DeepseekV3ForCausalLM(cfg.to_hf())
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = load_pretrained(d, load_mtp=False)
    return hf, ours


class _RecordGemms(TorchDispatchMode):
    """Record the (op, argument shapes) of every matrix product dispatched inside the context."""

    OPS = {"mm", "addmm", "bmm", "baddbmm"}

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, list[tuple[int, ...]]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.OPS:
            self.calls.append((name, [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


def gemm_replay(step) -> tuple[callable, int]:
    """A function running only the GEMMs of one call of ``step`` (same ops and shapes, fresh operands)."""
    with _RecordGemms() as rec:
        step()
    ops = []
    for name, shapes in rec.calls:
        ts = [torch.randn(s) for s in shapes]
        out = None
        if name in ("mm", "bmm"):
            out = torch.empty(shapes[0][:-1] + shapes[1][-1:])
        elif name in ("addmm", "baddbmm"):
            out = torch.empty(shapes[1][:-1] + shapes[2][-1:])
        ops.append((getattr(torch, name), ts, out))

    def replay():
        for fn, ts, out in ops:
            fn(*ts, out=out)

    return replay, len(ops)


def records(quick: bool = True, only: list[str] | None = None, threads: int | None = 1) -> list[Record]:
    """The benchmark rows (``only``: a subset of :data:`ROWS`)."""
    unknown = sorted(set(only or []) - set(ROWS))
    if unknown:
        raise ValueError(f"only: unknown row(s) {unknown}; expected a subset of {list(ROWS)}")
    want = set(only or ROWS)
    if threads is not None:
        torch.set_num_threads(threads)
    rep = 7
    cfg = DeepSeekV3Config.preset("small", n_mtp=0)
    conf = {"preset": "small", "batch": BATCH, "seq": SEQ, "threads": torch.get_num_threads(), "dtype": "float32",
            "rep": rep}
    out: list[Record] = []
    hf, ours = _pair(cfg)
    x = torch.randint(0, cfg.vocab_size, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    if "forward" in want or "bf16_forward" in want:
        hf.eval()
        ours.eval()
        with torch.no_grad():
            ref = hf(x).logits
            diff = (ref - ours(x).logits).abs().max().item()
            if "forward" in want:
                t = interleaved({"ours": lambda: ours(x), "transformers": lambda: hf(x)}, rep=rep)
                out.append(ratio_record("deepseek_moe/forward", t, "ours", "transformers", target=1 / 1.5,
                                        config=conf, note=f"same logits: max |diff| {diff:.1e}"))
            if "bf16_forward" in want:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    lb = ours(x).logits.float()
                err = ((lb - ref).abs().max() / ref.abs().max()).item()

                def bf16():
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        ours(x)

                t = interleaved({"ours bf16 autocast": bf16, "ours fp32": lambda: ours(x)}, rep=rep)
                out.append(ratio_record("deepseek_moe/bf16_forward", t, "ours bf16 autocast", "ours fp32", target=1.0,
                                        config=conf, note=f"max |logit error| / max |logit| = {err:.1e} vs fp32"))
    if "adamw_step" in want or "step_vs_gemm" in want:
        hf.train()
        ours.train()
        oh = torch.optim.AdamW(hf.parameters(), lr=1e-4)
        oo = torch.optim.AdamW(ours.parameters(), lr=1e-4, fused=True)

        def step_hf():
            loss = torch.nn.functional.cross_entropy(hf(x).logits.flatten(0, 1), x.flatten())
            oh.zero_grad()
            loss.backward()
            oh.step()

        def step_ours():
            o = ours(x, labels=x, compute_mtp=False)
            oo.zero_grad()
            o.loss.backward()
            oo.step()
            ours.update_expert_bias()

        if "adamw_step" in want:
            t = interleaved({"ours": step_ours, "transformers": step_hf}, rep=rep)
            out.append(ratio_record("deepseek_moe/adamw_step", t, "ours", "transformers", target=1 / 1.5,
                                    config=conf, note="forward + backward + AdamW (ours fused=True)"))
        if "step_vs_gemm" in want:
            replay, n = gemm_replay(step_ours)
            t = interleaved({"ours step": step_ours, "GEMMs alone": replay}, rep=rep)
            out.append(ratio_record("deepseek_moe/step_vs_gemm", t, "ours step", "GEMMs alone", target=1.4,
                                    config=conf, note=f"{n} GEMMs of one step replayed with the same shapes"))
    if "decode_4k" in want:
        out.append(_decode_record(cfg, conf, rep))
    return out


@torch.no_grad()
def _decode_record(cfg: DeepSeekV3Config, conf: dict, rep: int) -> Record:
    torch.manual_seed(0)
    m = DeepSeekV3(cfg).eval()
    ctx = cfg.max_seq_len - 1
    prompt = torch.randint(0, cfg.vocab_size, (1, ctx))
    tok = torch.randint(0, cfg.vocab_size, (1, 1))
    fns, sizes = {}, {}
    for impl in ("absorb", "naive"):
        cache = m.new_cache(1, ctx + 1, impl)
        t0 = time.perf_counter()
        m(prompt, cache=cache)  # prefill (absorbed: chunked, no [B, S, H, T] scores)
        sizes[impl] = (cache.nbytes, time.perf_counter() - t0)

        def step(cache=cache):
            cache.length = ctx
            return m(tok, cache=cache).logits

        fns[f"{impl} cache"] = step
    t = interleaved(fns, rep=3 * rep)
    return ratio_record("deepseek_moe/decode_4k", t, "absorb cache", "naive cache", target=1.0,
                        config={**conf, "context": ctx, "batch": 1},
                        note=f"cache {sizes['absorb'][0] / 2**20:.1f} MiB vs {sizes['naive'][0] / 2**20:.1f} MiB")
