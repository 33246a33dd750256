import json
from pathlib import Path

import pytest
from papercommon.records import RecordError
from zipf_whitening.__main__ import main
from zipf_whitening.reproduce import REPRODUCTIONS, sts

QUICK = Path(__file__).resolve().parents[1] / "results" / "quick"


def test_registry_names():
    assert [r.name for r in REPRODUCTIONS] == ["glove-static", "norms", "minilm-tokens", "sts"]


def test_sts_is_skipped_with_a_reason_offline(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    claims = sts(quick=True, out=tmp_path)
    assert len(claims) == 1 and claims[0].holds is None and "skipped" in claims[0].note


def test_tables_render_from_committed_records():
    from zipf_whitening.report import render_tables

    text = render_tables(QUICK)
    assert "| zipfian_whitening |" in text and "Spearman with mean task score" in text
    assert "official code, our data" in text and "2nd moment" in text


def test_each_symmetry_moment_has_its_own_verdict_following_the_numbers():
    claims = json.loads((QUICK / "zipf_whitening" / "glove-static.json").read_text())["metrics"]["claims"]
    fig3 = [c for c in claims if c["paper_ref"] == "Fig. 3"]
    assert len(fig3) == 2
    for c in fig3:
        assert c["holds"] == (c["ours"]["zipfian"] > c["ours"]["uniform"])
    assert [c["holds"] for c in fig3] == [True, False]  # sym1 supports Fig. 3, sym2 does not (0.314 < 0.371)


def test_tables_cli_exits_nonzero_on_missing_or_corrupt_records(tmp_path, capsys):
    assert main(["tables", "--out", str(tmp_path / "nothing")]) == 1
    assert "no record at" in capsys.readouterr().err
    folder = tmp_path / "zipf_whitening"
    folder.mkdir()
    (folder / "glove-static.data.json").write_text("{not json")
    assert main(["tables", "--out", str(tmp_path)]) == 1
    assert "unreadable" in capsys.readouterr().err
    with pytest.raises(RecordError):
        from zipf_whitening.report import render_tables

        render_tables(tmp_path)


def test_cli_usage_errors():
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--seed", "-1"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
