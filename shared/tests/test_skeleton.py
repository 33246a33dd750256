"""The package skeleton: Config base, records, figures, interleaved timing, Triton guard, package CLI."""

import argparse
import json
from dataclasses import dataclass, field

import pytest
import torch
from papercommon.bench import interleaved, ratio
from papercommon.checks import check_int, check_positive, check_range, check_tensor
from papercommon.cli import Command, package_main
from papercommon.config import CONFIGS, Config
from papercommon.figures import figure
from papercommon.kernels import import_triton
from papercommon.records import RecordError, read_records, render_table, write_record


@dataclass(frozen=True, kw_only=True)
class Inner(Config):
    width: int = 4


@dataclass(frozen=True, kw_only=True)
class Outer(Config):
    lr: float = 1e-3                        # learning rate
    betas: tuple[float, float] = (0.9, 0.95)
    sizes: tuple[int, ...] = (1, 2, 3)
    inner: Inner = field(default_factory=Inner)
    maybe: tuple[int, int] | None = None

    def validate(self) -> None:
        check_positive("lr", self.lr)


def test_config_round_trips_through_json():
    cfg = Outer(lr=0.5, sizes=(4,), inner=Inner(width=8), maybe=(1, 2))
    back = Outer.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and isinstance(back.betas, tuple) and isinstance(back.inner, Inner)
    assert isinstance(back.maybe, tuple)
    assert any(c is Outer for c in CONFIGS.values())


def test_config_is_frozen_keyword_only_and_validated(tmp_path):
    with pytest.raises(TypeError):
        Outer(0.5)  # positional
    cfg = Outer()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0
    with pytest.raises(ValueError, match=r"lr: expected a finite number > 0, got nan"):
        Outer(lr=float("nan"))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['lrr'\]"):
        Outer.from_dict({"lrr": 1.0})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['nope'\]"):
        cfg.replace(nope=1)
    assert cfg.replace(lr=2.0).lr == 2.0
    assert Outer.load(cfg.save(tmp_path / "c.json")) == cfg
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON .*expected a config file of Outer"):
        Outer.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match=r"missing.json not found: expected a config file of Outer"):
        Outer.load(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"list.json: expected .* holding a JSON object, got list"):
        Outer.load(tmp_path / "list.json")


def test_checks_name_the_argument():
    with pytest.raises(ValueError, match=r"n: expected an int >= 1, got 0"):
        check_int("n", 0)
    with pytest.raises(ValueError, match=r"n: expected an int >= 1, got True"):
        check_int("n", True)
    with pytest.raises(ValueError, match=r"p: expected a finite number in \(0, 1\]"):
        check_range("p", 0.0, 0, 1, inclusive=(False, True))
    with pytest.raises(ValueError, match="x: expected finite values"):
        check_tensor("x", torch.tensor([1.0, float("inf")]), finite=True)
    with pytest.raises(ValueError, match=r"x: expected a tensor with 2 dims, got shape \(3,\)"):
        check_tensor("x", torch.zeros(3), ndim=2)


def test_records_carry_git_and_environment_and_fail_loudly(tmp_path):
    path = write_record(tmp_path, "sub/run", config=Outer(), metrics={"acc": torch.tensor(0.5), "x": float("nan")})
    d = json.loads(path.read_text())
    assert path.name == "run.json" and d["config"]["betas"] == [0.9, 0.95]
    assert d["metrics"] == {"acc": 0.5, "x": "nan"}
    assert {"commit", "dirty"} <= d["git"].keys() and "torch" in d["env"] and "command" in d
    assert "| sub/run |" in render_table(read_records(tmp_path))
    with pytest.raises(RecordError, match="no records folder"):
        read_records(tmp_path / "missing")
    (tmp_path / "sub" / "corrupt.json").write_text("{")
    with pytest.raises(RecordError, match="corrupt.json is unreadable"):
        read_records(tmp_path)
    with pytest.raises(ValueError, match="relative record name"):
        write_record(tmp_path, "../escape", metrics={})


def test_figure_saves_and_needs_no_pyplot(tmp_path):
    with figure(tmp_path / "f" / "a.png", ncols=2, title="t") as axes:
        axes[0].plot([1, 2], label="a")
        axes[1].bar([0], [1])
    assert (tmp_path / "f" / "a.png").stat().st_size > 1000


def test_interleaved_runs_round_robin():
    order = []
    ts = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rep=7, warmup=1)
    assert order == ["a", "b"] * 8 and len(ts["a"].times_ms) == 7
    assert ratio(ts, "a", "a") == 1.0
    with pytest.raises(ValueError):
        interleaved({}, rep=7)


def test_import_triton_guard():
    triton, tl = import_triton()
    assert (triton is None) == (tl is None)


def test_package_main_contract(tmp_path, capsys):
    calls = []

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--records", default=str(tmp_path / "none"))

    def tables(args):
        calls.append(args.records)
        read_records(args.records)

    cmd = Command("tables", "render tables", tables, add)
    assert package_main("demo", [cmd], ["tables"]) == 1  # missing records: exit 1 with a message
    assert "no records folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        package_main("demo", [cmd], ["reproduce", "--seed", "nan"])
    assert e.value.code == 2
