"""The CTR cross-encoder network: language model over the pair, pooled, then an MLP head."""

from __future__ import annotations

import torch
from torch import nn

from lmrec.text.tuning import TunableEncoder


class CTRHead(nn.Module):
    """Dropout → Linear → GELU → Dropout → Linear(1): one logit per pooled pair vector.

    Args:
        dim: Width of the pooled vector.
        hidden: Width of the hidden layer.
        dropout: Dropout probability on the input and on the hidden layer.
    """

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(batch, dim)`` vectors → ``(batch,)`` logits."""
        return self.layers(vectors).squeeze(-1)


class CrossEncoderCTR(nn.Module):
    """``logit = head(pool(PLM(profile [SEP] item)))``.

    Args:
        encoder: The language model, prepared for its tuning strategy.
        head: The MLP head.
    """

    def __init__(self, encoder: TunableEncoder, head: CTRHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens)`` pair ids and mask → ``(batch,)`` logits."""
        return self.head(self.encoder(input_ids, attention_mask))
