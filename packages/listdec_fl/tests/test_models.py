import torch
from listdec_fl.models import LogisticRegression, SmallCNN, build_model


def test_logreg_closed_form_grad_matches_autograd():
    g = torch.Generator().manual_seed(0)
    m = LogisticRegression((1, 8, 8), 10)
    p = m.init(4, g)
    x, y = torch.randn(4, 16, 1, 8, 8, generator=g), torch.randint(0, 10, (4, 16), generator=g)
    loss, grad = m.loss_and_grad(p, x, y)
    loss_ref, grad_ref = super(LogisticRegression, m).loss_and_grad(p, x, y)  # vmap(grad(functional_call))
    torch.testing.assert_close(loss, loss_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad, grad_ref, atol=1e-6, rtol=1e-5)


def test_forward_matches_module():
    g = torch.Generator().manual_seed(1)
    for m in (LogisticRegression((1, 8, 8), 10), SmallCNN((1, 8, 8), 10), SmallCNN((3, 12, 12), 5)):
        p = m.init(3, g)
        x = torch.randn(3, 5, *m.in_shape, generator=g)
        out = m.forward(p, x)
        for r in range(3):
            torch.testing.assert_close(out[r], m.module(p[r])(x[r]), atol=1e-5, rtol=1e-5)
        shared = m.logits_shared(p, x[0], chunk=2)
        for r in range(3):
            torch.testing.assert_close(shared[r], m.module(p[r])(x[0]), atol=1e-5, rtol=1e-5)


def test_cnn_grad_matches_autograd():
    g = torch.Generator().manual_seed(2)
    m = SmallCNN((1, 8, 8), 4)
    p = m.init(2, g)
    x, y = torch.randn(2, 6, 1, 8, 8, generator=g), torch.randint(0, 4, (2, 6), generator=g)
    loss, grad = m.loss_and_grad(p, x, y)
    for r in range(2):
        mod = m.module(p[r])
        ref = torch.nn.functional.cross_entropy(mod(x[r]), y[r])
        ref.backward()
        torch.testing.assert_close(grad[r], torch.cat([q.grad.reshape(-1) for q in mod.parameters()]), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(loss[r], ref.detach(), atol=1e-6, rtol=1e-5)


def test_flatten_roundtrip_and_bad_shape():
    m = build_model("logreg", (1, 4, 4), 3)
    p = m.init(1, torch.Generator().manual_seed(0))[0]
    assert m.dim == 16 * 3 + 3 and m.segments == [(0, 48), (48, 51)]
    torch.testing.assert_close(m.flatten(m.module(p)), p)
    try:
        m.load(m.module(), torch.zeros(5))
    except ValueError as e:
        assert "expected shape (51,)" in str(e)
    else:
        raise AssertionError("no error")
