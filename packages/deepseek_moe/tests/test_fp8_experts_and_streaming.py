"""Issue 19: FP8 routed experts, streaming (per-tensor) checkpoint loading, prefill without [B, S, H, T] scores."""

import weakref

import pytest
import torch
from deepseek_moe import (
    DeepSeekV3,
    DeepSeekV3Config,
    FP8Experts,
    load_pretrained,
    quantize_model_fp8,
    save_pretrained,
)
from deepseek_moe import checkpoint as ckpt
from deepseek_moe import functional as Fn
from deepseek_moe.fp8 import module_bytes, weight_dequant
from torch.utils._python_dispatch import TorchDispatchMode

CFG = dict(dim=128, inter_dim=128, moe_inter_dim=128, q_lora_rank=128, kv_lora_rank=128, n_heads=8, v_head_dim=16)


@pytest.fixture
def fp8_model():
    torch.manual_seed(0)
    return DeepSeekV3(DeepSeekV3Config.preset("tiny", **CFG)).eval()


def test_fp8_experts_equal_reference_on_dequantized_weights(fp8_model):
    exp = fp8_model.layers[1].mlp.experts
    q = FP8Experts.from_experts(exp)
    E = q.n_experts
    deq = {n: torch.stack([q.expert_weight(n, e, torch.float32) for e in range(E)])
           for n in ("gate_proj", "up_proj", "down_proj")}
    x = torch.randn(40, 128)
    w, idx = torch.rand(40, 2), torch.randint(0, E, (40, 2))
    ref = Fn.swiglu_experts_reference(x, w, idx, torch.cat([deq["gate_proj"], deq["up_proj"]], 1), deq["down_proj"])
    torch.testing.assert_close(q(x, w, idx), ref, atol=1e-5, rtol=1e-5)
    # memory: one byte per weight plus one fp32 scale per 128x128 block, vs 4 bytes in fp32
    n = sum(exp.gate_up_proj.numel() + exp.down_proj.numel() for _ in [0])
    assert module_bytes(q) == n + 4 * 3 * E
    assert module_bytes(q) < 0.26 * module_bytes(exp)


def test_quantize_model_fp8_converts_routed_experts(fp8_model):
    x = torch.randint(0, 128, (1, 16))
    with torch.no_grad():
        ref = fp8_model(x).logits
        quantize_model_fp8(fp8_model, gemm_impl="bf16")
        got = fp8_model(x).logits
    assert isinstance(fp8_model.layers[1].mlp.experts, FP8Experts)
    assert float((got - ref).norm() / ref.norm()) < 0.1


def test_fp8_checkpoint_loads_into_fp8_modules_without_dequantizing(tmp_path, fp8_model, monkeypatch):
    save_pretrained(fp8_model, tmp_path, fp8=True, max_shard_bytes=200_000)
    sd = ckpt.read_safetensors(tmp_path)
    assert sd["model.layers.1.mlp.experts.3.up_proj.weight"].dtype == torch.float8_e4m3fn
    # Never an fp32 copy of a weight: dequantization must not run when keeping FP8.
    monkeypatch.setattr(ckpt, "weight_dequant", lambda *a, **k: pytest.fail("dequantized while loading fp8"))
    # Streaming: at most a couple of tensors read from the shards are alive at any time.
    live, peak = [0], [0]
    get = ckpt.CheckpointReader.get

    def tracked(self, key):
        t = get(self, key)
        nb = t.numel() * t.element_size()
        live[0] += nb
        peak[0] = max(peak[0], live[0])
        weakref.finalize(t, lambda: live.__setitem__(0, live[0] - nb))
        return t

    monkeypatch.setattr(ckpt.CheckpointReader, "get", tracked)
    back = load_pretrained(tmp_path, fp8=True)
    import gc

    gc.collect()
    biggest = max(t.numel() * t.element_size() for t in sd.values())
    # live[0] now counts what the model kept (read tensors used as its buffers, no copy); beyond that, at most
    # two read tensors were alive at once: no shard, no state dict, no full model copy
    assert peak[0] <= live[0] + 2 * biggest
    assert live[0] <= module_bytes(back)
    e = back.layers[1].mlp.experts
    assert isinstance(e, FP8Experts)
    assert torch.equal(e.up_proj[3].view(torch.uint8), sd["model.layers.1.mlp.experts.3.up_proj.weight"].view(torch.uint8))
    monkeypatch.undo()
    deq = load_pretrained(tmp_path)  # dequantized into fp32 tensor by tensor
    torch.testing.assert_close(deq.layers[1].mlp.experts.down_proj[3],
                               weight_dequant(sd["model.layers.1.mlp.experts.3.down_proj.weight"],
                                              sd["model.layers.1.mlp.experts.3.down_proj.weight_scale_inv"]))
    x = torch.randint(0, 128, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(back(x).logits, deq(x).logits, atol=1e-4, rtol=1e-4)
    # a quantized model saves to the same layout
    save_pretrained(back, tmp_path / "again")
    again = ckpt.read_safetensors(tmp_path / "again")
    assert torch.equal(again["model.layers.1.mlp.experts.3.up_proj.weight"].view(torch.uint8),
                       sd["model.layers.1.mlp.experts.3.up_proj.weight"].view(torch.uint8))


@pytest.mark.parametrize("start, budget", [(0, 10**9), (0, 3 * 4 * 24), (7, 3 * 4 * 31)])
def test_absorbed_chunked_equals_reference(start, budget):
    torch.manual_seed(0)
    B, S, H, dn, dv, C, R = 3, 17, 4, 16, 16, 32, 8
    T = start + S
    qn = torch.randn(B, S, H, dn, requires_grad=True)
    qp = torch.randn(B, S, H, R, requires_grad=True)
    kv, kp = torch.randn(B, T, C, requires_grad=True), torch.randn(B, T, R, requires_grad=True)
    w = torch.randn(H * (dn + dv), C, requires_grad=True)
    ref = Fn.mla_absorbed(qn, qp, kv, kp, w, 0.2, Fn.causal_mask(S, T, start))
    got = Fn.mla_absorbed_chunked(qn, qp, kv, kp, w, 0.2, start, max_score_elems=budget)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    gr = torch.autograd.grad(ref, (qn, qp, kv, kp, w), g)
    gg = torch.autograd.grad(got, (qn, qp, kv, kp, w), g)
    for a, b in zip(gg, gr):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


class _Largest(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_prefill_through_absorbed_cache_never_builds_bshT_scores(tiny_model):
    B, S = 3, 64
    H = tiny_model.cfg.n_heads
    x = torch.randint(0, 128, (B, S))
    cache = tiny_model.new_cache(B, S + 4, "absorb")
    with torch.no_grad(), _Largest() as mode:
        logits = tiny_model(x, cache=cache).logits
    assert mode.largest < B * S * H * S  # the old einsum path built [B, S, H, T] scores
    with torch.no_grad():
        torch.testing.assert_close(logits, tiny_model(x).logits, atol=1e-5, rtol=1e-4)
