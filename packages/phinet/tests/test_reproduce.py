import json

import pytest
from papercommon.records import RecordError
from phinet.reproduce import QUICK_WD_SCALE, REPRODUCTIONS, SEEDS, WEIGHT_DECAYS, results_table


def test_registered_reproductions():
    assert [r.name for r in REPRODUCTIONS] == ["weight-decay", "continual", "linear-dynamics"]
    assert WEIGHT_DECAYS == (0.0, 1e-5, 1e-4, 5e-4, 1e-3)
    assert QUICK_WD_SCALE > 1 and len(SEEDS) >= 3


def test_results_table_renders_records_and_refuses_missing_ones(tmp_path):
    claim = {"paper_ref": "Sec. 4", "metric": "m", "paper": "0.167", "ours": "0.200", "holds": True, "note": ""}
    for name in ("weight-decay", "continual", "linear-dynamics"):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"name": name, "config": {"quick": True}, "metrics": {"error": None, "claims": [claim]}}))
    table = results_table(tmp_path)
    assert "| linear-dynamics | Sec. 4 | m | 0.167 | 0.200 | yes | deterministic |" in table
    assert "| weight-decay | Sec. 4 | m | 0.167 | 0.200 | yes | 3 |" in table
    (tmp_path / "continual.json").write_text("{broken")
    with pytest.raises(RecordError, match="continual.json is unreadable"):
        results_table(tmp_path)
    (tmp_path / "continual.json").unlink()
    with pytest.raises(RecordError, match="no record at"):
        results_table(tmp_path)


def _fake_wd(acc_sim, acc_phi, rank_sim, rank_phi):
    import phinet.reproduce as R

    def fake(quick, out, seeds=None):
        wds = list(R.QUICK_WEIGHT_DECAYS)

        def cell(acc, rank, i):
            return {"knn_acc": [a - 0.1 * i for a in acc], "effective_rank": [r - i for r in rank],
                    "collapse_std": [0.1] * len(acc), "healthy_std": 0.125}

        runs = {"simsiam": {str(w): cell(acc_sim, rank_sim, i) for i, w in enumerate(wds)},
                "phinet": {str(w): cell(acc_phi, rank_phi, 0) for w in wds},
                "xphinet": {str(w): cell(acc_phi, rank_phi, 0) for w in wds}}
        return {"settings": {"data": "digits"}, "weight_decays": wds, "steps": 10, "wd_scale": 400.0, "runs": runs}

    return fake


def test_weight_decay_verdicts_follow_the_seed_spread(monkeypatch, tmp_path):
    import phinet.reproduce as R

    # PhiNet clearly ahead (margin 0.2 >> std 0.01): the worst-case and effective-rank claims hold
    monkeypatch.setattr(R, "run_weight_decay", _fake_wd([0.9, 0.91, 0.89], [0.9, 0.91, 0.89], [20, 21, 19], [20, 21, 19]))
    claims = {c.metric.split(" (")[0]: c for c in R.weight_decay(True, tmp_path)}
    assert claims["worst kNN acc over the wd sweep"].holds
    assert claims["effective rank of test features at the largest wd=0.001"].holds
    # the same means but seeds spread by 0.3: nothing may be called a win
    monkeypatch.setattr(R, "run_weight_decay", _fake_wd([0.6, 0.9, 1.2], [0.6, 0.9, 1.2], [5, 20, 35], [5, 20, 35]))
    claims = {c.metric.split(" (")[0]: c for c in R.weight_decay(True, tmp_path)}
    assert not claims["worst kNN acc over the wd sweep"].holds
    assert not claims["effective rank of test features at the largest wd=0.001"].holds


def test_continual_verdicts_need_a_margin(monkeypatch, tmp_path):
    import phinet.reproduce as R

    def fake(forget, spread):
        def run(quick, out, seeds=None):
            runs = {m: {"forgetting": [f - spread, f, f + spread], "final_avg_acc": [1 - f - spread, 1 - f, 1 - f + spread],
                        "final_seen_acc": [1 - f - spread, 1 - f, 1 - f + spread]}
                    for m, f in zip(R.SSL_MODELS, forget)}
            return {"settings": {"data": "digits"}, "seeds": [0, 1, 2], "epochs_per_task": 2, "runs": runs}
        return run

    monkeypatch.setattr(R, "run_continual", fake((0.3, 0.2, 0.1), 0.01))
    assert [c.holds for c in R.continual(True, tmp_path)] == [True, True, True]
    monkeypatch.setattr(R, "run_continual", fake((0.3, 0.2, 0.1), 0.2))
    assert [c.holds for c in R.continual(True, tmp_path)] == [False, False, False]
