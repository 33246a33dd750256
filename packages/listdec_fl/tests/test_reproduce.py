import json

import pytest
from listdec_fl.__main__ import main
from listdec_fl.reproduce import (
    REPRODUCTIONS,
    aggregate_seeds,
    alpha_sweep,
    plot_sweep,
    sweep_claims,
    sweep_settings,
    sweep_table,
)

from .conftest import synthetic_federated


def test_registered_and_settings():
    assert [r.name for r in REPRODUCTIONS] == ["alpha-sweep"]
    q, f = sweep_settings(True), sweep_settings(False)
    assert q["dataset"] == "digits" and f["alphas"] == [0.2, 0.4, 0.6, 0.7, 0.8] and len(f["aggregators"]) == 7
    assert len(q["attacks"]) == 6 and f["n_clients"] == 35 and q["seeds"] >= 3 and 0.8 in q["lidfl_alphas"]


def test_tiny_sweep_three_rules_claims_and_plot(tmp_path):
    s = {"dataset": "synthetic", "n_clients": 10, "alphas": [0.2, 0.6, 0.8], "lidfl_alphas": [0.6, 0.8],
         "rounds": 3, "eval_every": 3, "lidfl_rounds": 10, "trusted_size": 20, "aggregators": ["fedavg", "median"],
         "attacks": ["signflip", "ipm"], "seed": 0, "model": "logreg"}
    per = [alpha_sweep({**s, "seed": i}, progress=False, data=synthetic_federated(seed=i)) for i in range(2)]
    out = aggregate_seeds(per)
    assert set(out["lidfl"]) == {"signflip", "ipm"} and set(out["lidfl_trusted"]["ipm"]) == {"0.6", "0.8"}
    m, sd = out["lidfl_trusted"]["ipm"]["0.6"]
    assert 0 <= m <= 1 and sd >= 0
    for atk in out["lidfl"]:  # the oracle is an upper bound of both non-oracle picks, seed by seed
        for p in per:
            for a in p["lidfl"][atk]:
                assert p["lidfl"][atk][a] >= max(p["lidfl_trusted"][atk][a], p["lidfl_voted"][atk][a])
    claims = sweep_claims(out)
    assert len(claims) == 7 and all(isinstance(c.holds, bool) for c in claims)
    plot_sweep(out, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert "LiD-FL trusted pick" in sweep_table(out)


def test_tables_cli_exits_nonzero_on_missing_or_corrupt(tmp_path, capsys):
    assert main(["tables", "--records", str(tmp_path / "nope")]) == 1
    (tmp_path / "alpha_sweep_x.json").write_text("{not json")
    assert main(["tables", "--records", str(tmp_path)]) == 1
    (tmp_path / "alpha_sweep_x.json").write_text(json.dumps({"name": "x", "metrics": {}}))
    assert main(["tables", "--records", str(tmp_path)]) == 1
    assert "error" in capsys.readouterr().err


def test_cli_usage_errors():
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--seeds", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
