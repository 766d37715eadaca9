"""The SASRec network: item and position embeddings, then causal self-attention blocks.

Token ids: ``0`` is padding, item index ``i`` is token ``i + 1`` and ``n_items + 1`` is a
learned start-of-sequence token, placed before a history that fits into ``max_len`` whole
(so an empty history is just the start token). Sequences are padded on the left.

Positions are counted back from the most recent slot (position 0), which encodes recency
the way SASRec's left-padded absolute positions do. Together with padding that is masked
out of every attention row, this makes the hidden state of a slot independent of how much
left padding a batch adds. The start token carries no position, so its state does not
depend on where it stands: the state of an empty history is exactly the one trained to
predict users' first items. (Counting positions from the first item instead scored 0.002
lower validation NDCG@10 on both tuning datasets, see ``bench/notes/sasrec_tuning.md``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD = 0
"""Token id of padding."""


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over a boolean mask (``True`` = may attend).

    Built from ``nn.Linear`` layers and ``scaled_dot_product_attention`` so that per-sample
    gradients (Opacus) work without special layers. The attention weights are not dropped
    out: on CPU that costs one random number per query-key pair (as much time as the rest of
    the block at ``max_len = 200``), and the block's other dropouts regularise enough.
    """

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last: bool = False) -> torch.Tensor:
        """Attention outputs ``(batch, length, dim)``; with ``last``, of the last slot only
        ``(batch, 1, dim)`` (every slot is still a key and a value)."""
        b, length, dim = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.n_heads, dim // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if last:
            q, mask = q[:, :, -1:], mask[:, :, -1:]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, q.shape[2], dim))


class SASRecBlock(nn.Module):
    """Self-attention then a position-wise feed-forward layer, each with a residual path."""

    def __init__(
        self, dim: int, n_heads: int, ffn_dim: int, dropout: float, norm_first: bool
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attention = CausalSelfAttention(dim, n_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last: bool = False) -> torch.Tensor:
        """The block's outputs for every slot, or with ``last`` for the last slot only (what
        scoring needs of the top block: a quarter of its work)."""
        if self.norm_first:
            attended = self.attention(self.norm1(x), mask, last)
            x = (x[:, -1:] if last else x) + self.dropout(attended)
            return x + self.dropout(self.ffn(self.norm2(x)))
        attended = self.attention(x, mask, last)
        x = self.norm1((x[:, -1:] if last else x) + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x)))


class SASRecModule(nn.Module):
    """Encodes left-padded token sequences into one hidden state per slot.

    The output layer is the item embedding table itself (tied weights) or, with
    ``tied=False``, a second table of the same shape: the logit of item ``i`` after a slot
    is ``hidden @ item_weights()[i]``.

    Args:
        n_items: Catalog size.
        dim: Embedding and hidden width.
        n_layers: Number of blocks.
        n_heads: Attention heads per block (must divide ``dim``).
        ffn_dim: Hidden width of the feed-forward layers.
        max_len: Longest token sequence (start token included) the module accepts.
        dropout: Dropout probability.
        norm_first: Pre-LN blocks with a final LayerNorm (else post-LN with a LayerNorm on
            the embeddings).
        cosine: :meth:`logits` are cosine similarities divided by ``temperature``.
        temperature: Temperature of the cosine logits.
        tied: Score with the input embeddings (else with their own output embeddings).
        mixture: Softmax components (1: the usual single softmax). With ``k > 1`` each
            state is turned into ``k`` contexts ``h + tanh(W_j h + b_j)`` and a gate
            ``softmax(G h)``; :meth:`logits` are then the log of the gate-weighted mixture of
            the ``k`` softmaxes (a mixture of softmaxes, Yang et al. 2018), which a single
            dot product of width ``dim`` cannot always express.
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        n_layers: int,
        n_heads: int,
        ffn_dim: int,
        max_len: int,
        dropout: float,
        norm_first: bool,
        cosine: bool = False,
        temperature: float = 1.0,
        tied: bool = True,
        mixture: int = 1,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.mixture = mixture
        self.mixture_contexts = nn.Linear(dim, mixture * dim) if mixture > 1 else None
        self.mixture_gate = nn.Linear(dim, mixture) if mixture > 1 else None
        self.cosine = cosine
        self.temperature = temperature
        self.max_len = max_len
        self.item_embedding = nn.Embedding(n_items + 2, dim, padding_idx=PAD)
        self.output_embedding = None if tied else nn.Embedding(n_items + 1, dim, padding_idx=PAD)
        self.position_embedding = nn.Embedding(max_len, dim)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            SASRecBlock(dim, n_heads, ffn_dim, dropout, norm_first) for _ in range(n_layers)
        )
        # Pre-LN leaves the residual stream unnormalised, so it ends with a LayerNorm;
        # post-LN normalises the embeddings before the first block instead.
        self.norm = nn.LayerNorm(dim)
        self.norm_first = norm_first
        self.reset_parameters()

    @property
    def start_token(self) -> int:
        """Token id of the start-of-sequence token."""
        return self.n_items + 1

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) weights and zero biases, as usual for small transformers."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()
            if self.output_embedding is not None:
                self.output_embedding.weight[PAD].zero_()

    @property
    def output_table(self) -> torch.Tensor:
        """The whole output embedding weight (row ``PAD`` first): the scored rows are
        :meth:`item_weights`."""
        table = self.item_embedding if self.output_embedding is None else self.output_embedding
        return table.weight

    def item_weights(self) -> torch.Tensor:
        """Output embeddings of the catalog, shape ``(n_items, dim)``."""
        return self.output_table[1 : self.n_items + 1]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every catalog item after each hidden state ``(..., dim)`` (with
        ``mixture > 1``: log-probabilities of the mixture)."""
        weights = self.item_weights()
        if self.mixture_contexts is not None and self.mixture_gate is not None:
            shift = torch.tanh(self.mixture_contexts(hidden)).unflatten(-1, (self.mixture, -1))
            contexts = hidden.unsqueeze(-2) + shift  # (..., mixture, dim)
            if self.cosine:
                contexts = F.normalize(contexts, dim=-1)
                weights = F.normalize(weights, dim=-1)
            scale = self.temperature if self.cosine else 1.0
            parts = F.log_softmax(contexts @ weights.T / scale, dim=-1)
            gate = F.log_softmax(self.mixture_gate(hidden), dim=-1)
            return torch.logsumexp(gate.unsqueeze(-1) + parts, dim=-2)
        if self.cosine:
            hidden = F.normalize(hidden, dim=-1)
            weights = F.normalize(weights, dim=-1)
            return hidden @ weights.T / self.temperature
        return hidden @ weights.T

    def forward(self, tokens: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Hidden states ``(batch, length, dim)`` of left-padded ``tokens`` ``(batch, length)``.

        Slot ``t`` sees only the real tokens at slots ``<= t``; a padding slot sees only
        itself (its output is meaningless and must be ignored). ``last_only``: the last
        slot's state alone, ``(batch, 1, dim)``, computed with less work (for scoring).
        """
        return self.contextualize(
            self.item_embedding(tokens), tokens != PAD, tokens != self.start_token, last_only
        )

    def contextualize(
        self, x: torch.Tensor, real: torch.Tensor, placed: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """Run the blocks over already embedded slots (the part shared with text models).

        Args:
            x: ``(batch, length, dim)`` input vectors, left-padded.
            real: ``(batch, length)`` true for real slots (items and the start token).
            placed: ``(batch, length)`` true for slots that get a position (not the start
                token).
            last_only: Return the last slot's state alone (the top block computes no other).

        Returns:
            ``(batch, length, dim)`` hidden states (``(batch, 1, dim)`` with ``last_only``).
        """
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.max_len}")
        # Positions count back from the most recent slot (0), so left padding shifts nothing.
        # The start token gets none: its state is then the same wherever it stands, and an
        # empty history (the start token alone) is served by what it learned in training.
        positions = torch.arange(length - 1, -1, -1, device=x.device)
        x = x + self.position_embedding(positions) * placed.unsqueeze(-1)
        if not self.norm_first:
            x = self.norm(x)
        x = self.embedding_dropout(x)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        mask = (causal & (real[:, None, :] | eye)).unsqueeze(1)  # (batch, 1, query, key)
        for j, block in enumerate(self.blocks):
            x = block(x, mask, last_only and j == len(self.blocks) - 1)
        return self.norm(x) if self.norm_first else x
