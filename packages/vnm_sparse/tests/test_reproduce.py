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


def _tiny_smollm2(monkeypatch):
    """Stand SmolLM2 and its corpora in for a tiny Llama and random tokens (the wiring, not the numbers)."""
    import pytest
    import torch
    from vnm_sparse.experiments import lora_run

    tf = pytest.importorskip("transformers")

    def data():
        torch.manual_seed(0)
        cfg = tf.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
        g = torch.Generator().manual_seed(1)
        ids = lambda n: torch.randint(0, 96, (n,), generator=g)
        return tf.LlamaForCausalLM(cfg).eval(), ids(1200), {"lee_heldout": ids(300), "pydoc": ids(300)}

    monkeypatch.setattr(lora_run, "_data", data)
    monkeypatch.setattr(lora_run, "EVAL_TOKENS", 256)


def test_smollm2_full_runs_three_seeds_of_calibration(tmp_path, monkeypatch):
    """Each seed draws its own calibration windows, is recorded, and the verdicts come from the 3 seeds."""
    from papercommon.records import read_record

    _tiny_smollm2(monkeypatch)
    smollm2 = next(r for r in REPRODUCTIONS if r.name == "smollm2")
    claims = smollm2(quick=False, out=tmp_path)
    assert len(claims) == 4 and all(c.holds is not None for c in claims)
    recs = [read_record(tmp_path / f"smollm2_s{s}.json")["metrics"] for s in range(3)]
    assert len({tuple(r["calib_starts"]) for r in recs}) == 3
    for r in recs:
        assert set(r["ppl"]) == {"dense", "2:4 ria", "64:2:5 ria", "64:2:5 ria + permutation"}
        assert r["ppl"]["dense"] == recs[0]["ppl"]["dense"]  # calibration does not touch the dense model
