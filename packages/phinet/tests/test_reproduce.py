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
