"""An evaluation task: which users, what they are known to have done, what to predict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmrec.data.schema import InteractionData


@dataclass
class EvalTask:
    """Users to evaluate, their known histories (model input, excluded from ranking), targets.

    Args:
        users: User indices, shape ``(n,)``.
        histories: Per user, time-ordered known item indices.
        targets: Per user, the item indices to retrieve (at least one each).
        n_items: Catalog size.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]
    n_items: int

    def __post_init__(self) -> None:
        if not (len(self.users) == len(self.histories) == len(self.targets)):
            raise ValueError("users, histories and targets must have the same length")

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_interactions(cls, known: InteractionData, targets: InteractionData) -> EvalTask:
        """Users who have targets; histories from ``known`` (users without any get an empty one).

        Both arguments must share id maps. Users with no target interaction are left out.
        """
        known_seq = known.sequences()
        target_seq = targets.sequences()
        users = np.array([u for u, t in enumerate(target_seq) if len(t)], dtype=np.int64)
        return cls(
            users=users,
            histories=[known_seq[u] for u in users],
            targets=[np.unique(target_seq[u]) for u in users],
            n_items=known.n_items,
        )
