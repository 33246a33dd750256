"""``DeepSeekV3.compile_blocks`` (the torch.compile option of the CPU benchmark) against the eager model."""

import copy

import pytest
import torch


@pytest.mark.slow  # inductor compiles C++ kernels: about a minute on the shared 2-core machine
def test_compiled_blocks_match_eager_logits_and_gradients(tiny_cfg):
    from deepseek_moe import DeepSeekV3

    torch.manual_seed(0)
    eager = DeepSeekV3(tiny_cfg).train()
    comp = copy.deepcopy(eager).compile_blocks()
    x = torch.randint(0, tiny_cfg.vocab_size, (2, 24))
    outs = []
    for m in (eager, comp):
        o = m(x, labels=x)
        o.loss.backward()
        outs.append((o.logits.detach(), o.loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
    (le, se, ge), (lc, sc, gc) = outs
    torch.testing.assert_close(lc, le, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sc, se, rtol=1e-5, atol=1e-6)
    assert ge.keys() == gc.keys()
    for n in ge:
        torch.testing.assert_close(gc[n], ge[n], rtol=1e-4, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")
