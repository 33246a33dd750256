import pytest
from proper_loss_bounds.reproduce import REPRODUCTIONS


def test_registered():
    assert [r.name for r in REPRODUCTIONS] == ["psi-slope", "theorems", "learning-curve"]


@pytest.mark.slow
@pytest.mark.parametrize("repro", REPRODUCTIONS, ids=lambda r: r.name)
def test_quick_reproductions_hold(repro, tmp_path):
    claims = repro(quick=True, out=tmp_path)
    assert claims and all(c.holds is not False for c in claims), [c for c in claims if c.holds is False]
