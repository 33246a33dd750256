"""The server state of LiD-FL: a list of models, their momentum buffers and selection counts.

One round (Algorithm 1 of the paper; official ``nListDec.train`` + ``gListDec.aggregate_parameters`` /
``vote_phase``):

1. :meth:`ModelList.choose` picks a listed model uniformly at random and counts the selection;
2. a sampled client trains it; :meth:`ModelList.append` adds the result (k + 1 models now);
3. every client votes for one candidate; :meth:`ModelList.prune` removes the least-voted one (ties: the
   most-selected, then the oldest), back to k models.

The list holds opaque payloads (flat tensors in the simulator, Flower ``ArrayRecord`` s in the strategy),
so the same state machine drives both.

Example:
    >>> import torch
    >>> from listdec_fl.listdec import ModelList
    >>> ml = ModelList.replicate(torch.zeros(3), k=2)
    >>> g = torch.Generator().manual_seed(0)
    >>> i = ml.choose(g)
    >>> ml.append(ml.models[i] + 1.0, momentum=None)
    >>> ml.prune(torch.tensor([2, 2, 2, 0]))  # 4 voters; model 1 gets no vote and goes
    1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from listdec_fl.functional import removal_index, tally


@dataclass
class ModelList:
    """The list of k candidate models.

    Attributes:
        models: k payloads.
        momenta: k momentum payloads (``None`` = zero momentum).
        selections: how often each model was chosen for training (official ``paras_t``).
        k: the list size kept after each vote.
        history: per round, ``{"chosen", "votes", "removed", "new_kept"}``.
    """

    models: list[Any]
    momenta: list[Any]
    selections: list[int]
    k: int
    history: list[dict[str, Any]] = field(default_factory=list)
    _chosen: int | None = None

    @classmethod
    def replicate(cls, model: Any, k: int, momentum: Any = None) -> ModelList:
        """k copies of the initial model (official ``[params] * num_listDec``)."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"list size k: expected an int >= 1, given {k!r}")
        return cls(models=[model] * k, momenta=[momentum] * k, selections=[0] * k, k=k)

    def __len__(self) -> int:
        return len(self.models)

    def choose(self, generator: torch.Generator | None = None) -> int:
        """Pick a listed model uniformly at random for this round's training and count it."""
        if len(self.models) != self.k:
            raise RuntimeError(f"choose: expected a pruned list of {self.k} models, found {len(self.models)} "
                               "(call prune after append)")
        idx = int(torch.randint(0, len(self.models), (1,), generator=generator))
        self.selections[idx] += 1
        self._chosen = idx
        return idx

    def append(self, model: Any, momentum: Any) -> None:
        """Add the freshly trained model (it enters with selection count 0)."""
        if len(self.models) != self.k:
            raise RuntimeError(f"append: expected {self.k} models before appending, found {len(self.models)}")
        self.models.append(model)
        self.momenta.append(momentum)
        self.selections.append(0)

    def prune(self, votes: Tensor) -> int:
        """Tally ``votes`` (one candidate index per client) and remove the least-voted candidate.

        Returns:
            the removed index (``k`` means the new model was rejected).
        """
        m = len(self.models)
        if m != self.k + 1:
            raise RuntimeError(f"prune: expected k + 1 = {self.k + 1} candidates, found {m}")
        counts = tally(votes, m)
        rm = removal_index(counts.tolist(), self.selections)
        self.history.append({"chosen": self._chosen, "votes": counts.tolist(), "removed": rm,
                             "new_kept": rm != m - 1})
        for lst in (self.models, self.momenta, self.selections):
            lst.pop(rm)
        return rm

    def most_voted(self) -> int:
        """Index (in the current list) of the model with the most votes in the last round, or 0."""
        if not self.history:
            return 0
        votes = list(self.history[-1]["votes"])
        votes.pop(self.history[-1]["removed"])
        return max(range(len(votes)), key=lambda i: votes[i])
