import pytest
from fastattention.__main__ import main


def test_help_is_a_usage_message(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "reproduce" in capsys.readouterr().out


def test_tables_renders_the_committed_records(capsys):
    assert main(["tables"]) == 0
    assert "| exactness |" in capsys.readouterr().out


def test_tables_exits_nonzero_on_missing_or_corrupt_records(tmp_path, capsys):
    assert main(["tables", "--records", str(tmp_path / "nowhere")]) == 1
    (tmp_path / "exactness.json").write_text("{not json")
    assert main(["tables", "--records", str(tmp_path)]) == 1
    assert str(tmp_path) in capsys.readouterr().err
