import json
from importlib.metadata import EntryPoint

import pytest
from papercommon import reproduce
from papercommon.reproduce import Claim, main, reproduction, run


@reproduction("toy", "a claim that holds and one that does not")
def toy(quick, out):
    (out / "artifact.txt").write_text("x")
    return [Claim("Tab. 1", "accuracy", 0.9, 0.91, holds=True), Claim("Fig. 2", "ratio", "> 1", 0.5, holds=False)]


@reproduction("broken")
def broken(quick, out):
    raise RuntimeError("boom")


@pytest.fixture
def registry(monkeypatch):
    class EP(EntryPoint):
        def load(self):
            return [toy, broken]

    monkeypatch.setattr(reproduce, "entry_points", lambda group: [EP("demo", "x:y", group)])


def test_run_writes_records_and_summary(registry, tmp_path):
    records = run(["demo"], quick=True, out=tmp_path)
    assert [r["name"] for r in records] == ["demo/toy", "demo/broken"]
    rec = json.loads((tmp_path / "demo" / "toy.json").read_text())
    assert rec["config"]["quick"] is True and rec["metrics"]["claims"][0]["ours"] == 0.91
    assert (tmp_path / "demo" / "artifact.txt").exists()
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "| demo | toy | Tab. 1 | accuracy | 0.9 | 0.91 | yes |" in summary
    assert "| demo | toy | Fig. 2 | ratio | > 1 | 0.5 | no |" in summary
    assert "| demo | broken | - | - | - | RuntimeError: boom | error |" in summary
    assert "| **total** |" in summary and "| demo | toy |" in summary.split("## Claims")[0]


def test_unknown_package_lists_known(registry, tmp_path):
    with pytest.raises(SystemExit, match=r"unknown package\(s\) \['nope'\]; known: \['demo'\]"):
        run(["nope"], out=tmp_path)


def test_no_package_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "entry_points", lambda group: [])
    with pytest.raises(SystemExit, match="no papercommon package"):
        run(out=tmp_path)
    assert main(["list"]) == 1


def test_cli_list_and_exit_code(registry, tmp_path, capsys):
    assert main(["list"]) == 0
    assert "toy" in capsys.readouterr().out
    assert main(["reproduce", "demo", "--only", "toy", "--out", str(tmp_path)]) == 0
    assert main(["reproduce", "demo", "--out", str(tmp_path)]) == 1  # broken raised


def test_every_installed_package_registers():
    found = reproduce.discover()
    assert "zipf_whitening" in found
    for repros in found.values():
        assert all(isinstance(r, reproduce.Reproduction) for r in repros)


def test_claim_without_verdict_needs_a_reason():
    with pytest.raises(ValueError, match="holds=None needs a note"):
        Claim("Tab. 1", "accuracy", 0.9, 0.91)
    assert Claim("Tab. 1", "accuracy", 0.9, None, note="needs ImageNet, offline here").verdict == "n/a"


def test_seed_reaches_the_reproduction(monkeypatch, tmp_path):
    seen = []

    @reproduction("seeded")
    def seeded(quick, out, seed):
        import torch

        seen.append((seed, torch.initial_seed()))
        return [Claim("-", "seed", 0, seed, holds=True)]

    class EP(EntryPoint):
        def load(self):
            return [seeded]

    monkeypatch.setattr(reproduce, "entry_points", lambda group: [EP("demo", "x:y", group)])
    assert main(["reproduce", "demo", "--seed", "7", "--out", str(tmp_path)]) == 0
    assert seen == [(7, 7)]


@pytest.mark.parametrize("argv", [["reproduce", "demo", "--seed", "-1"], ["reproduce", "demo", "--seed", "x"],
                                  ["reproduce", "nope"], ["reproduce", "demo", "--only", "missing"],
                                  ["reproduce", "demo", "--quick", "--full"]])
def test_bad_cli_values_are_usage_errors(registry, tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_package_that_fails_to_import_is_an_error_row(monkeypatch, tmp_path):
    class Broken(EntryPoint):
        def load(self):
            raise ImportError("no module named nowhere")

    class Fine(EntryPoint):
        def load(self):
            return [toy]

    monkeypatch.setattr(reproduce, "entry_points", lambda group: [Broken("bad", "x:y", group), Fine("demo", "x:y", group)])
    assert main(["reproduce", "demo", "--out", str(tmp_path)]) == 0   # the broken package is never imported
    records = run(out=tmp_path)
    errors = {r["name"]: r["metrics"]["error"] for r in records}
    assert "ImportError: no module named nowhere" in errors["bad/import"] and errors["demo/toy"] is None
