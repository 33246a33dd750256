import json

from phinet.reproduce import QUICK_WD_SCALE, REPRODUCTIONS, WEIGHT_DECAYS, results_table


def test_registered_reproductions():
    assert [r.name for r in REPRODUCTIONS] == ["weight-decay", "continual", "linear-dynamics"]
    assert WEIGHT_DECAYS == (0.0, 1e-5, 1e-4, 5e-4, 1e-3)
    assert QUICK_WD_SCALE > 1


def test_results_table_renders_records(tmp_path):
    rec = {"config": {"quick": True}, "metrics": {"error": None, "claims": [
        {"paper_ref": "Sec. 4", "metric": "m", "paper": "0.167", "ours": "0.200", "holds": True, "note": ""}]}}
    (tmp_path / "linear-dynamics.json").write_text(json.dumps(rec))
    table = results_table(tmp_path)
    assert "| linear-dynamics | Sec. 4 | m | 0.167 | 0.200 | +0.033; holds |" in table
    assert "| weight-decay | - | - | - | not run |" in table


def test_claims_from_fake_runs(monkeypatch, tmp_path):
    import phinet.reproduce as R

    def fake_wd(quick, out):
        runs = {m: {str(w): {"knn_acc": 0.9 - i * 0.1 * (m == "simsiam"), "collapse_std": 0.12 - 0.1 * i * (m == "simsiam"),
                             "healthy_std": 0.125} for i, w in enumerate(R.WEIGHT_DECAYS)} for m in R.SSL_MODELS}
        return {"settings": {"data": "digits", "seeds": (0,)}, "steps": 10, "wd_scale": 200.0, "runs": runs}

    def fake_cl(quick, out):
        runs = {m: {"forgetting": f, "final_avg_acc": 1 - f, "final_seen_acc": 1 - f}
                for m, f in zip(R.SSL_MODELS, (0.3, 0.2, 0.1))}
        return {"settings": {"data": "digits"}, "epochs_per_task": 2, "runs": runs}

    monkeypatch.setattr(R, "run_weight_decay", fake_wd)
    monkeypatch.setattr(R, "run_continual", fake_cl)
    wd = R.weight_decay(True, tmp_path)
    assert wd[-3].holds and wd[-2].holds and wd[-1].holds       # SimSiam degrades and collapses; PhiNet holds
    cl = R.continual(True, tmp_path)
    assert all(c.holds for c in cl)
