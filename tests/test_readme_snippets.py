"""Every ```python block of every README runs, as a user would paste it: a fresh interpreter, an empty
working directory, nothing but the installed packages and the offline data (opt-in: ``pytest -m slow``)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]
BLOCKS = [(readme, i, code) for readme in READMES
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", readme.read_text(), re.S))]


@pytest.mark.slow
@pytest.mark.parametrize("readme, index, code", BLOCKS,
                         ids=[f"{r.relative_to(ROOT).parent.name or 'top'}-{i}" for r, i, _ in BLOCKS])
def test_readme_python_block_runs(readme, index, code, tmp_path):
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"{readme.relative_to(ROOT)} block {index} failed:\n{run.stderr[-3000:]}"


def test_every_package_readme_has_a_python_example():
    names = {r.parent.name for r, _, _ in BLOCKS}
    missing = sorted(p.parent.name for p in READMES[1:] if p.parent.name not in names)
    assert not missing, f"READMEs without a ```python usage example: {missing}"
