import pytest
from fastattention.reproduce import REPRODUCTIONS


def test_reproductions_are_registered_with_unique_names():
    names = [r.name for r in REPRODUCTIONS]
    assert len(names) == len(set(names)) >= 8
    assert {"exactness", "memory", "tiling-mask", "two-level-tiling", "tiling-allreduce", "cpu-gpu-cooperation",
            "speed", "smollm2"} <= set(names)



@pytest.mark.slow
def test_two_level_reproduction_runs_and_holds(tmp_path):
    two = next(r for r in REPRODUCTIONS if r.name == "two-level-tiling")
    claims = two(quick=True, out=tmp_path)
    assert all(c.holds for c in claims), claims
    assert (tmp_path / "two-level-tiling.details.json").exists()
