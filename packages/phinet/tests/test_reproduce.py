import json

import pytest
from papercommon.records import RecordError
from phinet.reproduce import QUICK_WD_SCALE, REPRODUCTIONS, SEEDS, WEIGHT_DECAYS, results_table


def test_registered_reproductions():
    assert [r.name for r in REPRODUCTIONS] == ["weight-decay", "continual", "linear-dynamics", "weight-decay-mnist",
                                               "continual-mnist"]
    assert WEIGHT_DECAYS == (0.0, 1e-5, 1e-4, 5e-4, 1e-3)
    assert QUICK_WD_SCALE > 1 and len(SEEDS) >= 3


def _write(path, name, quick=True, claim=None):
    claim = claim or {"paper_ref": "Sec. 4", "metric": "m", "paper": "0.167", "ours": "0.200", "holds": True, "note": ""}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "config": {"quick": quick}, "metrics": {"error": None, "claims": [claim]}}))


def test_results_table_renders_records_and_refuses_missing_ones(tmp_path):
    for name in ("weight-decay", "continual", "linear-dynamics"):
        _write(tmp_path / f"{name}.json", name)
    for name in ("weight-decay-mnist", "continual-mnist"):
        _write(tmp_path / "mnist5k" / f"{name}.json", name, quick=False)
    table = results_table(tmp_path)
    assert "| Paper | Official code (our data) | Ours |" in table
    assert "| linear-dynamics | Sec. 4 | m | 0.167 | - | 0.200 | yes | deterministic | `results/linear-dynamics.json` |" in table
    assert "| weight-decay | Sec. 4 | m | 0.167 | - | 0.200 | yes | 3 | `results/weight-decay.json` |" in table
    assert "| weight-decay-mnist | Sec. 4 | m | 0.167 | - | 0.200 | yes | 3 | `results/mnist5k/weight-decay-mnist.json` |" in table
    # the MNIST records are read from results/mnist5k/, not from results/
    (tmp_path / "mnist5k" / "continual-mnist.json").rename(tmp_path / "continual-mnist.json")
    with pytest.raises(RecordError, match="mnist5k/continual-mnist.json"):
        results_table(tmp_path)
    (tmp_path / "continual-mnist.json").rename(tmp_path / "mnist5k" / "continual-mnist.json")
    (tmp_path / "continual.json").write_text("{broken")
    with pytest.raises(RecordError, match="continual.json is unreadable"):
        results_table(tmp_path)
    (tmp_path / "continual.json").unlink()
    with pytest.raises(RecordError, match="no record at"):
        results_table(tmp_path)


def test_quick_mnist_record_shows_no_seeds(tmp_path):
    for name in ("weight-decay", "continual", "linear-dynamics"):
        _write(tmp_path / f"{name}.json", name)
    na = {"paper_ref": "Fig. 6", "metric": "w", "paper": "see README", "ours": "not run", "holds": None, "note": "x"}
    for name in ("weight-decay-mnist", "continual-mnist"):
        _write(tmp_path / "mnist5k" / f"{name}.json", name, quick=True, claim=na)
    assert "| weight-decay-mnist | Fig. 6 | w | see README | - | not run | n/a | - |" in results_table(tmp_path)


def _fake_wd(acc_sim, acc_phi, rank_sim, rank_phi):
    import phinet.reproduce as R

    def fake(quick, out, seeds=None, data=None):
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
    # equal accuracy at wd=0 is a tie, not "PhiNet > SimSiam"; ahead by 0.2 >> std 0.01 at wd=1e-3 holds
    monkeypatch.setattr(R, "run_weight_decay", _fake_wd([0.9, 0.91, 0.89], [0.9, 0.91, 0.89], [20, 21, 19], [20, 21, 19]))
    claims = {c.metric.split(" (")[0]: c for c in R.weight_decay(True, tmp_path)}
    assert not claims["kNN acc at wd=0"].holds
    assert claims["kNN acc at wd=0.001"].holds and claims["kNN acc at wd=0.001"].paper == "PhiNet > SimSiam"


def test_continual_verdicts_need_a_margin(monkeypatch, tmp_path):
    import phinet.reproduce as R

    def fake(forget, spread):
        def run(quick, out, seeds=None, data=None):
            runs = {m: {"forgetting": [f - spread, f, f + spread], "final_avg_acc": [1 - f - spread, 1 - f, 1 - f + spread],
                        "final_seen_acc": [1 - f - spread, 1 - f, 1 - f + spread]}
                    for m, f in zip(R.SSL_MODELS, forget)}
            return {"settings": {"data": "digits"}, "seeds": [0, 1, 2], "epochs_per_task": 2, "runs": runs}
        return run

    monkeypatch.setattr(R, "run_continual", fake((0.3, 0.2, 0.1), 0.01))
    assert [c.holds for c in R.continual(True, tmp_path)] == [True, True, True]
    monkeypatch.setattr(R, "run_continual", fake((0.3, 0.2, 0.1), 0.2))
    assert [c.holds for c in R.continual(True, tmp_path)] == [False, False, False]


def test_settings_per_data_set():
    import phinet.reproduce as R

    assert R._settings(True)["data"] == "digits" and R._settings(False)["data"] == "cifar10"
    assert R._settings(True, "mnist5k") == R._settings(False, "mnist5k")     # one CPU setting in both modes
    m = R._settings(True, "mnist5k")
    assert m["data"] == "mnist5k" and m["model"]["image_size"] == 28 and m["model"]["in_channels"] == 1
    assert m["wd_scale"] == R.MNIST_WD_SCALE and len(m["seeds"]) >= 3
    assert R._settings(True)["wd_scale"] == R.QUICK_WD_SCALE and R._settings(False)["wd_scale"] == 1.0
    with pytest.raises(ValueError, match="data must be one of"):
        R._settings(True, "imagenet")


def _recorder(calls, result):
    def run(quick, out, seeds=None, data=None, **kw):
        calls.append({"quick": quick, "seeds": seeds, "data": data})
        return result
    return run


def _boom(*a, **k):
    raise AssertionError("quick mode must not train on MNIST-5k (over the quick budget)")


def test_mnist_reproductions_skip_in_quick_mode_and_run_mnist5k_in_full(monkeypatch, tmp_path):
    import phinet.reproduce as R

    monkeypatch.setattr(R, "run_weight_decay", _boom)
    monkeypatch.setattr(R, "run_continual", _boom)
    for fn in (R.weight_decay_mnist, R.continual_mnist):
        (claim,) = fn(True, tmp_path)
        assert claim.holds is None and claim.ours == "not run" and "--full --only" in claim.note
    calls = []
    monkeypatch.setattr(R, "run_weight_decay", _recorder(calls, _fake_wd([0.9] * 3, [0.9] * 3, [20] * 3, [20] * 3)(
        False, tmp_path)))
    R.weight_decay_mnist(False, tmp_path, seed=5)
    assert calls == [{"quick": False, "seeds": (5, 6, 7), "data": "mnist5k"}]
    cont = {"settings": {"data": "mnist5k"}, "seeds": [0, 1, 2], "epochs_per_task": 8,
            "runs": {m: {"forgetting": [0.1] * 3, "final_avg_acc": [0.9] * 3, "final_seen_acc": [0.8] * 3}
                     for m in R.SSL_MODELS}}
    monkeypatch.setattr(R, "run_continual", _recorder(calls, cont))
    claims = R.continual_mnist(False, tmp_path)
    assert calls[-1] == {"quick": False, "seeds": (0, 1, 2), "data": "mnist5k"}
    assert "Split-mnist5k" in claims[0].note
    # the digits reproductions keep their data: None (digits in quick mode)
    calls.clear()
    monkeypatch.setattr(R, "run_continual", _recorder(calls, cont))
    R.continual(True, tmp_path)
    assert calls == [{"quick": True, "seeds": (0, 1, 2), "data": None}]


def test_cli_data_option_reaches_the_runs(monkeypatch, tmp_path):
    import phinet.reproduce as R
    from phinet.__main__ import main

    calls = []
    wd = _fake_wd([0.9] * 3, [0.9] * 3, [20] * 3, [20] * 3)(True, tmp_path)
    monkeypatch.setattr(R, "run_weight_decay", _recorder(calls, wd))
    monkeypatch.setattr(R, "run_continual", _recorder(calls, {"runs": {}}))
    assert main(["weight-decay", "--data", "mnist5k", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert main(["continual", "--data", "mnist5k", "--out", str(tmp_path)]) == 0
    assert main(["continual", "--out", str(tmp_path)]) == 0
    assert calls == [{"quick": True, "seeds": (3, 4, 5), "data": "mnist5k"},
                     {"quick": True, "seeds": (0, 1, 2), "data": "mnist5k"},
                     {"quick": True, "seeds": (0, 1, 2), "data": None}]
    with pytest.raises(SystemExit) as e:
        main(["weight-decay", "--data", "imagenet"])
    assert e.value.code == 2


def test_mnist5k_sweep_trains_28x28_models_and_writes_under_mnist5k(monkeypatch, tmp_path):
    """End to end with stand-in 28x28 images (the real loader is tested in test_data.py): the MNIST setting
    builds a 28x28 model and its record and plots go to out/mnist5k/, not over the digits ones."""
    import phinet.reproduce as R
    import torch

    g = torch.Generator().manual_seed(0)
    fake = {"train": (torch.rand(130, 1, 28, 28, generator=g), torch.arange(130) % 10),
            "test": (torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10)}
    seen = []

    def load(name, split="train"):
        seen.append(name)
        return fake[split]

    st = dict(R._settings(True, "mnist5k"), epochs=1, continual_epochs=1, knn_k=5)
    monkeypatch.setattr(R, "_settings", lambda quick, data=None: st if data == "mnist5k" else pytest.fail(data))
    monkeypatch.setattr(R, "load_images", load)
    res = R.run_weight_decay(True, tmp_path, models=("phinet",), weight_decays=(5e-4,), seeds=(0,), data="mnist5k")
    assert set(seen) == {"mnist5k"} and res["steps"] == 1 and res["wd_scale"] == R.MNIST_WD_SCALE
    cell = res["runs"]["phinet"]["0.0005"]
    assert len(cell["knn_acc"]) == 1 and cell["effective_rank"][0] > 0
    assert (tmp_path / "mnist5k" / "weight_decay_runs.json").is_file()
    assert (tmp_path / "mnist5k" / "weight_decay_effective_rank.png").is_file()
    assert not (tmp_path / "weight_decay_runs.json").exists()
    # PHINET_REUSE_RUNS=1 re-scores exactly this sweep from its record instead of training again ...
    monkeypatch.setenv("PHINET_REUSE_RUNS", "1")
    seen.clear()
    again = R.run_weight_decay(True, tmp_path, models=("phinet",), weight_decays=(5e-4,), seeds=(0,), data="mnist5k")
    assert seen == [] and again["runs"] == json.loads(json.dumps(res["runs"]))
    assert again["reused_from"]["path"].endswith("mnist5k/weight_decay_runs.json")
    # ... and trains when anything differs (here the seeds), or without the variable
    R.run_weight_decay(True, tmp_path, models=("phinet",), weight_decays=(5e-4,), seeds=(1,), data="mnist5k")
    assert seen == ["mnist5k", "mnist5k"]
    monkeypatch.delenv("PHINET_REUSE_RUNS")
    R.run_weight_decay(True, tmp_path, models=("phinet",), weight_decays=(5e-4,), seeds=(1,), data="mnist5k")
    assert len(seen) == 4
