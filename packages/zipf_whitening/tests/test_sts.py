import sys

import pytest
from zipf_whitening.sts import STSUnavailableError, load_sts


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown STS task"):
        load_sts("sts99")


def test_missing_datasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(STSUnavailableError, match="pip install datasets"):
        load_sts("stsb")
