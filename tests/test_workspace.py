"""Cross-package checks: every package is a proper member that imports, registers and documents itself."""

import ast
import json
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())


def test_all_ten_packages_present():
    assert PACKAGES == sorted(["deepseek_moe", "zipf_whitening", "autobench_v", "fastattention", "vnm_sparse",
                               "flatquant", "listdec_fl", "proper_loss_bounds", "polyak_clip", "phinet"])


@pytest.mark.parametrize("name", PACKAGES)
def test_package_layout(name):
    pkg = ROOT / "packages" / name
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())["project"]
    assert meta["name"] == name, "dist name == folder == import name"
    assert "papercommon" in meta["dependencies"]
    assert (pkg / "src" / name / "__init__.py").exists() and (pkg / "README.md").exists()
    assert any((pkg / "tests").glob("test_*.py")), f"{name} has no tests"


@pytest.mark.parametrize("name", PACKAGES)
def test_no_cross_package_imports(name):
    others = set(PACKAGES) - {name}
    for path in (ROOT / "packages" / name / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [m for m in mods if m.split(".")[0] in others]
            assert not bad, f"{path} imports another paper's package: {bad}"


@pytest.mark.parametrize("name", PACKAGES)
def test_registers_reproductions(name):
    from papercommon.reproduce import Reproduction, discover

    repros = discover().get(name)
    assert repros, f"{name} registers no reproductions"
    assert all(isinstance(r, Reproduction) for r in repros)


@pytest.mark.parametrize("name", PACKAGES)
def test_results_are_records(name):
    """Every package commits the JSON its README numbers come from, with at least one papercommon Record."""
    files = list((ROOT / "packages" / name / "results").rglob("*.json"))
    loaded = [json.loads(p.read_text()) for p in files]
    records = [r for r in loaded if isinstance(r, dict) and {"config", "metrics", "git", "env"} <= r.keys()]
    assert records, f"{name}/results holds no papercommon Record ({len(files)} JSON files)"


KERNEL_PACKAGES = [p for p in PACKAGES if (ROOT / "packages" / p / "src" / p / "gpu_check.py").exists()]


def test_every_triton_package_has_a_gpu_check():
    assert {"deepseek_moe", "fastattention", "flatquant", "vnm_sparse"} <= set(KERNEL_PACKAGES)


@pytest.mark.parametrize("name", KERNEL_PACKAGES)
def test_gpu_checks_import_without_a_gpu(name):
    """benchmarks/gpu/run.py picks up every package's gpu_check; it must import on a CPU-only machine."""
    import importlib

    assert callable(importlib.import_module(f"{name}.gpu_check").gpu_checks)


def test_gpu_runner_refuses_without_cuda(capsys):
    import importlib.util

    import torch

    if torch.cuda.is_available():
        return  # with a GPU the runner runs for real: that is benchmarks/gpu/run.py itself
    spec = importlib.util.spec_from_file_location("gpu_run", ROOT / "benchmarks" / "gpu" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_gpu_runner_interpreted_correctness():
    """The GPU script's CPU test mode: shared kernels checked under TRITON_INTERPRET=1, gpu_checks imported."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "run.py"), "--interpret"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "failed: []" in out.stdout


REGISTRY_LIST = Path("/work/.library/env/packages/pypi.tsv")


def _internal_dependency_names() -> set[str]:
    names = {tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]["name"]}
    for name in PACKAGES:
        meta = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())
        names |= {d for d in meta["project"]["dependencies"] if (ROOT / "packages" / d).exists() or d == "papercommon"}
    return names


def _normalise(name: str) -> str:  # PEP 503, also folding separators away: "paper-common" == "papercommon"
    import re

    return re.sub(r"[-_.]+", "", name).lower()


def test_internal_dependencies_have_names_of_their_own():
    """No declared internal dependency may share its name with a distribution in the registry list, or pip
    installs a stranger's project (as `paperkit`, a LaTeX tool, once did)."""
    internal = _internal_dependency_names()
    assert "papercommon" in internal
    shared_names = {_normalise(n) for n in internal if not (ROOT / "packages" / n).exists()}
    if not REGISTRY_LIST.exists():
        pytest.skip(f"registry list {REGISTRY_LIST} is not on this machine")
    taken = set()
    with REGISTRY_LIST.open() as f:
        for line in f:
            if _normalise(line.split("\t", 1)[0]) in shared_names:
                taken.add(line.split("\t", 1)[0])
    assert not taken, f"internal dependency name(s) taken in the registry list: {sorted(taken)}"


def test_benchmark_runner_lists_every_benchmark():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--list"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert {"cpu", "compress", "attention", "optimizers", "quant"} <= set(out)
