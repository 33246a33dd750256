"""Cache folder and the error raised when a data source is missing."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


class DataUnavailableError(RuntimeError):
    """A data set or model is not available offline and could not be downloaded."""


def cache_dir(*parts: str) -> Path:
    """``$PAPERCOMMON_CACHE`` (default ``~/.cache/papercommon``) joined with ``parts``, created."""
    root = Path(os.environ.get("PAPERCOMMON_CACHE", Path.home() / ".cache" / "papercommon"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(module: str, install: str) -> Path:
    """The folder of an installed data package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(f"the offline data package {module!r} is not installed: `pip install {install}` "
                                   "(or `uv sync`, which installs the workspace's `data` group)")
    return Path(list(spec.submodule_search_locations)[0])


def gensim_data(name: str) -> Path:
    """A file of gensim's bundled test data (WordSim-353, SimLex-999, the Lee corpus)."""
    path = package_dir("gensim", "gensim") / "test" / "test_data" / name
    if not path.exists():
        raise DataUnavailableError(f"{path} is missing from the installed gensim; reinstall gensim>=4.3")
    return path
