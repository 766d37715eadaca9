"""The BPR network: user and item embeddings plus an optional item bias."""

from __future__ import annotations

import torch
from torch import nn


class BPRModule(nn.Module):
    """Matrix factorisation ``x_ui = <p_u, q_i> + b_i``.

    Args:
        n_users: Rows of the user embedding.
        n_items: Rows of the item embedding.
        factors: Embedding dimension.
        item_bias: Whether to learn ``b_i``.
        init_std: Standard deviation of the normal initialisation of the embeddings.
        generator: Random source of the initialisation, for reproducible weights.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        item_bias: bool,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Parameter(torch.empty(n_users, factors))
        self.item_factors = nn.Parameter(torch.empty(n_items, factors))
        self.item_bias = nn.Parameter(torch.zeros(n_items)) if item_bias else None
        with torch.no_grad():
            self.user_factors.normal_(0.0, init_std, generator=generator)
            self.item_factors.normal_(0.0, init_std, generator=generator)

    def pair_scores(
        self, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Scores of aligned (user, item) pairs, with the vectors used, for regularisation.

        Returns:
            ``(scores, item_vectors, item_biases)``; biases are ``None`` without a bias.
        """
        q = self.item_factors[items]
        x = (self.user_factors[users] * q).sum(dim=1)
        b = self.item_bias[items] if self.item_bias is not None else None
        if b is not None:
            x = x + b
        return x, q, b

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user, shape ``(len(users), n_items)``."""
        x = self.user_factors[users] @ self.item_factors.T
        if self.item_bias is not None:
            x = x + self.item_bias
        return x
