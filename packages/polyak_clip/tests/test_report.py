import json
import math

import pytest
from polyak_clip.report import all_tables, neural_table, synthetic_table


def test_tables_render_from_records(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected a record"):
        synthetic_table(tmp_path)
    syn = {"config": {"tol": 0.01}, "metrics": {"by_L1": {
        "1.0": {"gd": {"iterations_to_tol": 4.0, "final_gap": 0.0}},
        "1000.0": {"gd": {"iterations_to_tol": "inf", "final_gap": 4.4}}}}}
    (tmp_path / "synthetic_record.json").write_text(json.dumps(syn))
    table = synthetic_table(tmp_path)
    assert "| gd | 4 / 0.0e+00 | never / 4.4e+00 |" in table
    s = {"val_loss_mean": 2.5, "val_loss_std": 0.1, "diverged": 0, "seeds": 3}
    neu = {"metrics": {"lstm": {"inexact_polyak": s, "polyak": dict(s, val_loss_mean=math.inf, diverged=3),
                                "grid": []}}}
    (tmp_path / "neural_record.json").write_text(json.dumps(neu))
    table = neural_table(tmp_path)
    assert "| inexact_polyak | 2.500 ± 0.100 (0/3) |" in table and "inf ±" in table and "grid" not in table
    claims = {"metrics": {"claims": [{"metric": "m", "paper": "p", "ours": 1.5, "holds": False}]}}
    (tmp_path / "synthetic.json").write_text(json.dumps(claims))
    assert "| synthetic | m | p | 1.5 | **no** | `synthetic.json` |" in all_tables(tmp_path)
