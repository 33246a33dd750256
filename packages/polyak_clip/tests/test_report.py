import json
import math

import pytest
from papercommon.records import RecordError, write_record
from polyak_clip.__main__ import main
from polyak_clip.report import all_tables, neural_table, synthetic_table


def test_tables_render_from_records(tmp_path):
    with pytest.raises(RecordError, match="no record at"):
        synthetic_table(tmp_path)
    write_record(tmp_path, "synthetic_runs", config={"tol": 0.01}, metrics={"by_L1": {
        "1.0": {"gd": {"iterations_to_tol": 4.0, "final_gap": 0.0}},
        "1000.0": {"gd": {"iterations_to_tol": math.inf, "final_gap": 4.4}}}})
    assert "| gd | 4 / 0.0e+00 | never / 4.4e+00 |" in synthetic_table(tmp_path)
    s = {"val_loss_mean": 2.5, "val_loss_std": 0.1, "diverged": 0, "seeds": 3}
    write_record(tmp_path, "neural_runs", metrics={"summary": {"lstm": {
        "inexact_polyak": s, "polyak": dict(s, val_loss_mean=math.inf, diverged=3)}}})
    table = neural_table(tmp_path)
    assert "| inexact_polyak | 2.500 ± 0.100 (0/3) |" in table and "inf ±" in table
    for name in ("synthetic", "neural"):
        write_record(tmp_path, name, metrics={"claims": [{"metric": "m", "paper": "p", "ours": 1.5, "holds": False,
                                                          "note": "why"}]})
    assert "| synthetic | m | p | 1.5 | **no** | why |" in all_tables(tmp_path)


def test_tables_command_exits_nonzero_on_missing_or_corrupt_records(tmp_path, capsys):
    assert main(["tables", str(tmp_path / "nowhere")]) == 1
    assert "no record at" in capsys.readouterr().err
    (tmp_path / "synthetic.json").write_text("{not json")
    assert main(["tables", str(tmp_path)]) == 1
    assert "unreadable" in capsys.readouterr().err
    (tmp_path / "synthetic.json").write_text(json.dumps({"name": "x", "metrics": {}}))
    assert main(["tables", str(tmp_path)]) == 1
    assert "has no metrics.claims" in capsys.readouterr().err


def test_cli_usage_errors():
    with pytest.raises(SystemExit) as e:
        main(["train", "--steps", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
