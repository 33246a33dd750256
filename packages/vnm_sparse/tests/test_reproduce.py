from vnm_sparse.reproduce import REPRODUCTIONS


def test_registered_names():
    assert [r.name for r in REPRODUCTIONS] == ["vit", "smollm2", "smollm2-lora", "mask-search", "storage", "kernel-cpu"]


def test_storage_reproduction_runs(tmp_path):
    storage = next(r for r in REPRODUCTIONS if r.name == "storage")
    claims = storage(quick=True, out=tmp_path)
    assert all(c.holds for c in claims)
    assert (tmp_path / "storage_record.json").exists()
