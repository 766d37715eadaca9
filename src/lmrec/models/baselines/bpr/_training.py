"""Training BPR: triple sampling and one epoch of vectorised mini-batch steps."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from lmrec.models.baselines.bpr._config import BPRConfig
from lmrec.models.baselines.bpr._module import BPRModule

# Rounds of resampling negatives that hit a positive; a user who consumed almost the whole
# catalog could otherwise loop forever, so after these rounds the rare leftovers stay.
_RESAMPLE_ROUNDS = 20


class TripleSampler:
    """Draws, once per epoch, every training pair in random order with one uniform negative.

    Args:
        matrix: Binary users x items training matrix.
        rng: Random source of the order and the negatives.
        exclude_positives: Resample negatives that are positives of the same user.
    """

    def __init__(
        self, matrix: sp.csr_matrix, rng: np.random.Generator, exclude_positives: bool
    ) -> None:
        coo = sp.coo_matrix(matrix)
        self.n_items = matrix.shape[1]
        self.users = coo.row.astype(np.int64)
        self.items = coo.col.astype(np.int64)
        self.rng = rng
        self.exclude_positives = exclude_positives
        self._keys = np.sort(self.users * self.n_items + self.items)

    def __len__(self) -> int:
        return len(self.users)

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        hit: np.ndarray = self._keys[at] == keys
        return hit

    def epoch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shuffled ``(users, positives, negatives)``, one triple per training pair."""
        order = self.rng.permutation(len(self.users))
        users, pos = self.users[order], self.items[order]
        neg = self.rng.integers(0, self.n_items, size=len(users))
        if self.exclude_positives:
            bad = np.flatnonzero(self._is_positive(users, neg))
            for _ in range(_RESAMPLE_ROUNDS):
                if len(bad) == 0:
                    break
                neg[bad] = self.rng.integers(0, self.n_items, size=len(bad))
                bad = bad[self._is_positive(users[bad], neg[bad])]
        return users, pos, neg


def bpr_loss(
    module: BPRModule,
    users: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    reg: float,
) -> torch.Tensor:
    """Mean ``-log sigmoid(x_ui - x_uj)`` plus ``reg`` times the mean squared norm of the
    user, positive and negative vectors (and biases) of each triple."""
    x_pos, q_pos, b_pos = module.pair_scores(users, pos)
    x_neg, q_neg, b_neg = module.pair_scores(users, neg)
    loss = -F.logsigmoid(x_pos - x_neg).mean()
    if reg > 0:
        penalty = (
            module.user_factors[users].pow(2).sum(dim=1)
            + q_pos.pow(2).sum(dim=1)
            + q_neg.pow(2).sum(dim=1)
        )
        if b_pos is not None and b_neg is not None:
            penalty = penalty + b_pos.pow(2) + b_neg.pow(2)
        loss = loss + reg * penalty.mean()
    return loss


class BPRTrainer:
    """Runs BPR epochs on one module.

    Args:
        module: The network to train, already on ``device``.
        matrix: Binary users x items training matrix.
        config: Hyperparameters (batch size, learning rate, regularisation, optimiser, seed).
        device: Where the module lives.
    """

    def __init__(
        self, module: BPRModule, matrix: sp.csr_matrix, config: BPRConfig, device: torch.device
    ) -> None:
        self.module = module
        self.config = config
        self.device = device
        self.sampler = TripleSampler(
            matrix, np.random.default_rng(config.seed), config.exclude_positives
        )
        self.optimizer: torch.optim.Optimizer
        if config.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(
                module.parameters(), lr=config.lr, weight_decay=config.reg
            )
            self._loss_reg = 0.0
        else:
            self.optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
            self._loss_reg = config.reg

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training pairs; returns ``{"loss": mean batch loss}``."""
        self.module.train()
        users, pos, neg = (torch.from_numpy(a).to(self.device) for a in self.sampler.epoch())
        total = torch.zeros((), device=self.device)
        steps = 0
        size = self.config.batch_size
        for start in range(0, len(users), size):
            stop = start + size
            loss = bpr_loss(
                self.module, users[start:stop], pos[start:stop], neg[start:stop], self._loss_reg
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()  # summed on the device: no sync per step
            steps += 1
        self.module.eval()
        return {"loss": float(total) / max(steps, 1)}
