from vnm_sparse.reproduce import REPRODUCTIONS


def test_registered_names():
    assert [r.name for r in REPRODUCTIONS] == ["vit", "vit-3seed", "smollm2", "smollm2-lora", "mask-search", "storage", "kernel-cpu"]


def test_storage_reproduction_runs(tmp_path):
    storage = next(r for r in REPRODUCTIONS if r.name == "storage")
    claims = storage(quick=True, out=tmp_path)
    assert all(c.holds for c in claims)
    assert (tmp_path / "storage_record.json").exists()


def test_quick_skips_the_over_budget_reproductions(tmp_path):
    """vit, smollm2 and smollm2-lora are --full only; in --quick they record "not run" instead of a verdict."""
    for r in REPRODUCTIONS:
        if r.name in ("vit", "vit-3seed", "smollm2", "smollm2-lora"):
            claims = r(quick=True, out=tmp_path)
            assert [c.ours for c in claims] == ["not run"] and all(c.holds is None for c in claims)
