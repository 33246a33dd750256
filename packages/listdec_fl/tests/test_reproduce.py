from listdec_fl.reproduce import REPRODUCTIONS, alpha_sweep, plot_sweep, sweep_claims, sweep_settings

from .conftest import synthetic_federated


def test_registered_and_settings():
    assert [r.name for r in REPRODUCTIONS] == ["alpha-sweep"]
    q, f = sweep_settings(True), sweep_settings(False)
    assert q["dataset"] == "digits" and f["alphas"] == [0.2, 0.4, 0.6, 0.7, 0.8] and len(f["aggregators"]) == 7
    assert len(q["attacks"]) == 6 and f["n_clients"] == 35


def test_tiny_sweep_claims_and_plot(tmp_path):
    s = {"dataset": "synthetic", "n_clients": 10, "alphas": [0.2, 0.6], "rounds": 3, "eval_every": 3,
         "aggregators": ["fedavg", "median"], "attacks": ["signflip", "ipm"], "seed": 0, "model": "logreg"}
    out = alpha_sweep(s, progress=False, data=synthetic_federated())
    assert set(out["lidfl"]) == {"signflip", "ipm"} and set(out["baselines"]) == {"fedavg", "median"}
    assert 0 <= out["clean"] <= 1 and set(out["lidfl"]["ipm"]) == {"0.2", "0.6"}
    claims = sweep_claims(out)
    assert len(claims) == 3 and all(isinstance(c.holds, bool) for c in claims)
    plot_sweep(out, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
