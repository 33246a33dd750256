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
* ``forward_compiled``, ``adamw_step_compiled``, ``step_vs_gemm_compiled``: the same with
  :meth:`DeepSeekV3.compile_blocks` (``torch.compile`` of attention, norms, dense FFNs, shared experts and the
  LM loss; the routed dispatch stays eager); compile time (first calls) is stated in the note, not timed;
* ``bf16_forward``: our forward under ``torch.autocast("cpu", bfloat16)`` / fp32 (a measured option; the
  note gives its logit error);
* ``decode_4k``: one decoding step at 4K context, absorbed latent cache / naive per-head cache.
"""

from __future__ import annotations

import copy
import tempfile
import time

import torch
from papercommon.bench import Record, interleaved, ratio_record
from torch.utils._python_dispatch import TorchDispatchMode

from deepseek_moe.checkpoint import load_pretrained
from deepseek_moe.config import DeepSeekV3Config
from deepseek_moe.modules.model import DeepSeekV3

BATCH, SEQ = 8, 256
ROWS = ("forward", "adamw_step", "step_vs_gemm", "forward_compiled", "adamw_step_compiled", "step_vs_gemm_compiled",
        "bf16_forward", "decode_4k")


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
    compiled = None
    if want & {"forward_compiled", "adamw_step_compiled", "step_vs_gemm_compiled"}:
        # copies taken before any step, so the compiled rows also start from identical weights
        compiled = (copy.deepcopy(hf), copy.deepcopy(ours).compile_blocks(), copy.deepcopy(ours))
    out += _rows(hf, ours, x, cfg, conf, rep, want, "")
    if compiled is not None:
        hf_c, ours_c, eager_c = compiled
        out += _rows(hf_c, ours_c, x, cfg, conf, rep, want, "_compiled", eager=eager_c)
    if "decode_4k" in want:
        out.append(_decode_record(cfg, conf, rep))
    order = {r: i for i, r in enumerate(ROWS)}
    return sorted(out, key=lambda r: order[r.name.split("/", 1)[1]])


def _rows(hf, ours, x, cfg, conf, rep, want, suffix, eager=None) -> list[Record]:
    """forward / adamw_step / step_vs_gemm (+ bf16_forward when eager) of ``ours`` (``suffix``: row name suffix;
    ``eager``: the uncompiled model whose step's GEMMs are recorded, when ``ours`` is compiled)."""
    out: list[Record] = []
    fw, st, gm = f"forward{suffix}", f"adamw_step{suffix}", f"step_vs_gemm{suffix}"
    note_c = ""
    if suffix:
        hf.eval()
        ours.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            ours(x)
        tf = time.perf_counter() - t0
        ours.train()
        t0 = time.perf_counter()
        ours(x, labels=x, compute_mtp=False).loss.backward()
        ours.zero_grad()
        for g in ours.gates():
            g.load_accum.zero_()
        tb = time.perf_counter() - t0
        note_c = f"; compile time (first calls, not timed) {tf:.0f} s forward, {tb:.0f} s train step"
    if fw in want or (not suffix and "bf16_forward" in want):
        hf.eval()
        ours.eval()
        with torch.no_grad():
            ref = hf(x).logits
            diff = (ref - ours(x).logits).abs().max().item()
            if fw in want:
                t = interleaved({"ours": lambda: ours(x), "transformers": lambda: hf(x)}, rep=rep)
                out.append(ratio_record(f"deepseek_moe/{fw}", t, "ours", "transformers", target=1 / 1.5,
                                        config=conf, note=f"same logits: max |diff| {diff:.1e}{note_c}"))
            if not suffix and "bf16_forward" in want:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    lb = ours(x).logits.float()
                err = ((lb - ref).abs().max() / ref.abs().max()).item()

                def bf16():
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        ours(x)

                t = interleaved({"ours bf16 autocast": bf16, "ours fp32": lambda: ours(x)}, rep=rep)
                out.append(ratio_record("deepseek_moe/bf16_forward", t, "ours bf16 autocast", "ours fp32", target=1.0,
                                        config=conf, note=f"max |logit error| / max |logit| = {err:.1e} vs fp32"))
    if st in want or gm in want:
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

        if st in want:
            t = interleaved({"ours": step_ours, "transformers": step_hf}, rep=rep)
            out.append(ratio_record(f"deepseek_moe/{st}", t, "ours", "transformers", target=1 / 1.5,
                                    config=conf, note=f"forward + backward + AdamW (ours fused=True){note_c}"))
        if gm in want:
            replay, n = gemm_replay(step_ours if eager is None else _eager_step(eager, x))
            t = interleaved({"ours step": step_ours, "GEMMs alone": replay}, rep=rep)
            out.append(ratio_record(f"deepseek_moe/{gm}", t, "ours step", "GEMMs alone", target=1.4,
                                    config=conf, note=f"{n} GEMMs of one step replayed with the same shapes{note_c}"))
    return out


def _eager_step(model, x):
    """One eager training step of ``model`` (no optimizer update), for recording its GEMM shapes."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step():
        o = model(x, labels=x, compute_mtp=False)
        opt.zero_grad()
        o.loss.backward()
        opt.step()

    return step


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


def profile_step(steps: int = 3, threads: int | None = 1, compiled: bool = False) -> dict:
    """Where one AdamW step of the benchmark model goes (``torch.profiler`` self CPU time, shares in %).

    Shares are of the profiled wall time. Categories: the GEMMs (what ``step_vs_gemm`` replays), SDPA forward + backward, the LM cross-entropy
    (log-softmax forward/backward and NLL), the fused AdamW kernel, and everything else (elementwise,
    indexing, routing, copies).
    """
    from torch.profiler import ProfilerActivity, profile

    if threads is not None:
        torch.set_num_threads(threads)
    cfg = DeepSeekV3Config.preset("small", n_mtp=0)
    torch.manual_seed(0)
    m = DeepSeekV3(cfg).train()
    if compiled:
        m.compile_blocks()
    x = torch.randint(0, cfg.vocab_size, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)

    def step():
        o = m(x, labels=x, compute_mtp=False)
        opt.zero_grad()
        o.loss.backward()
        opt.step()
        m.update_expert_bias()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - t0
    cats = {"gemm": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
            "sdpa": ("aten::_scaled_dot_product_flash_attention_for_cpu",),
            "cross_entropy": ("aten::_log_softmax", "aten::nll_loss"),
            "adamw": ("aten::_fused_adamw_",)}
    ev = [k for k in prof.key_averages() if k.key.startswith("aten::")]
    total = wall * 1e6  # us; shares are of the wall time (compiled kernels and Python overhead fall in "other")
    share = {c: sum(k.self_cpu_time_total for k in ev if k.key.startswith(p) and (c != "gemm" or k.key in p))
             for c, p in cats.items()}
    share["other"] = total - sum(share.values())
    named = set().union(*cats.values())
    top = sorted((k for k in ev if not any(k.key.startswith(p) for p in named)), key=lambda k: -k.self_cpu_time_total)
    return {"config": {"preset": "small", "batch": BATCH, "seq": SEQ, "threads": torch.get_num_threads(),
                       "steps_profiled": steps, "compiled": compiled},
            "share_percent": {c: round(100 * v / total, 1) for c, v in share.items()},
            "top_other_percent": {k.key: round(100 * k.self_cpu_time_total / total, 1) for k in top[:8]},
            "wall_ms_per_step": round(wall / steps * 1000, 1)}
