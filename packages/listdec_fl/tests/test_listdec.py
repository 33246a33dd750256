import pytest
import torch
from listdec_fl.listdec import ModelList


def test_round_cycle_and_history():
    ml = ModelList.replicate(torch.zeros(2), k=3)
    g = torch.Generator().manual_seed(0)
    i = ml.choose(g)
    assert ml.selections[i] == 1 and sum(ml.selections) == 1
    ml.append(torch.ones(2), torch.zeros(2))
    assert len(ml) == 4 and ml.selections[-1] == 0
    rm = ml.prune(torch.tensor([3, 3, 0, 1, 1, 3]))  # model 2 gets no vote
    assert rm == 2 and len(ml) == 3
    assert ml.history[-1] == {"chosen": i, "votes": [1, 2, 0, 3], "removed": 2, "new_kept": True}
    assert ml.most_voted() == 2  # the new model (now at index 2) had 3 votes


def test_tie_prefers_removing_most_selected():
    ml = ModelList.replicate("a", k=2)
    ml.models = ["a", "b"]
    ml.selections = [5, 1]
    ml.choose(torch.Generator().manual_seed(0))
    ml.append("c", None)
    rm = ml.prune(torch.tensor([0, 1, 2]))  # all tied with one vote
    assert ml.models[0] != "a" and rm == 0


def test_bad_use():
    with pytest.raises(ValueError, match="k"):
        ModelList.replicate(0, k=0)
    ml = ModelList.replicate(0, k=2)
    with pytest.raises(RuntimeError, match="k \\+ 1"):
        ml.prune(torch.tensor([0]))
    ml.append(1, None)
    with pytest.raises(RuntimeError, match="choose"):
        ml.choose()
    with pytest.raises(RuntimeError, match="append"):
        ml.append(2, None)
