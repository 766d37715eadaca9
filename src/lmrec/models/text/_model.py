"""The networks of the text sequential recommender.

:class:`TextSeqModule` turns the catalog's language-model vectors into item vectors
(adaptor, optionally plus an item-id embedding) and contextualises a history of them with the
SASRec blocks; :class:`TextSeqNetwork` adds the fine-tuned encoder, when there is one, so that
one ``forward`` (the unit DDP synchronises) covers every trainable parameter.

Token ids follow SASRec: ``0`` is padding, item index ``i`` is token ``i + 1`` and
``n_items + 1`` is the start-of-sequence token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmrec.models.baselines.sasrec._model import PAD, SASRecModule
from lmrec.text.tuning import TunableEncoder


class TextSeqModule(nn.Module):
    """Adaptor, optional id embeddings and a causal transformer over item vectors.

    The language-model vector of every item is kept in the ``text_vectors`` buffer (cached
    vectors: computed once for a frozen encoder, refreshed every epoch otherwise).

    Args:
        n_items: Catalog size.
        text_dim: Width of the language-model vectors.
        dim: Width of item vectors and hidden states.
        n_layers: Transformer blocks.
        n_heads: Attention heads per block.
        ffn_dim: Hidden width of the feed-forward layers.
        max_len: Longest token sequence (start token included).
        dropout: Dropout inside the blocks.
        adaptor_dropout: Dropout on language-model vectors before the adaptor.
        id_fusion: Add item-id embeddings to the adapted text vectors.
        id_dropout: Probability of dropping an item's whole id embedding in training.
        cosine: Score by cosine similarity instead of the dot product.
        temperature: Divisor of the scores.
    """

    def __init__(
        self,
        n_items: int,
        text_dim: int,
        dim: int,
        n_layers: int,
        n_heads: int,
        ffn_dim: int,
        max_len: int,
        dropout: float,
        adaptor_dropout: float,
        id_fusion: bool,
        id_dropout: float,
        cosine: bool,
        temperature: float,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.id_dropout = id_dropout
        self.cosine = cosine
        self.temperature = temperature
        self.register_buffer("text_vectors", torch.zeros(n_items, text_dim))
        self.text_vectors: torch.Tensor
        self.adaptor_dropout = nn.Dropout(adaptor_dropout)
        self.adaptor = nn.Linear(text_dim, dim)
        self.id_embedding = nn.Embedding(n_items, dim) if id_fusion else None
        if self.id_embedding is not None:
            nn.init.normal_(self.id_embedding.weight, std=0.02)
        # A catalog-free SASRec: its two embedding rows are padding and the start token.
        self.sequence = SASRecModule(
            n_items=0,
            dim=dim,
            n_layers=n_layers,
            n_heads=n_heads,
            ffn_dim=ffn_dim,
            max_len=max_len,
            dropout=dropout,
            norm_first=True,
        )

    @property
    def start_token(self) -> int:
        return self.n_items + 1

    def item_table(self, text_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors ``(n_items, dim)`` from language-model vectors (default: the cache)."""
        text = self.text_vectors if text_vectors is None else text_vectors
        table = self.adaptor(self.adaptor_dropout(text))
        if self.id_embedding is not None:
            ids = self.id_embedding.weight
            if self.training and self.id_dropout > 0:
                keep = torch.ones(len(ids), 1, device=ids.device, dtype=ids.dtype)
                ids = ids * F.dropout(keep, self.id_dropout, training=True)
            table = table + ids
        return table

    def append_items(self, text_vectors: torch.Tensor) -> None:
        """Grow the catalog by ``len(text_vectors)`` items after the last one.

        A new item's id embedding is zero: it has no id signal, which is what id dropout
        trains the model to handle. The start token moves to the new ``n_items + 1``.
        """
        n_new = len(text_vectors)
        if n_new == 0:
            return
        self.text_vectors = torch.cat([self.text_vectors, text_vectors.to(self.text_vectors)])
        if self.id_embedding is not None:
            old = self.id_embedding.weight
            grown = nn.Embedding(self.n_items + n_new, old.shape[1]).to(old.device, old.dtype)
            with torch.no_grad():
                grown.weight[: self.n_items] = old
                grown.weight[self.n_items :] = 0.0
            self.id_embedding = grown
        self.n_items += n_new

    def clear_id_embeddings(self, items: torch.Tensor) -> None:
        """Zero the id embeddings of ``items`` (a boolean mask or indices); no-op without ids."""
        if self.id_embedding is not None:
            with torch.no_grad():
                self.id_embedding.weight[items.to(self.id_embedding.weight.device)] = 0.0

    def forward(
        self, tokens: torch.Tensor, table: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """Hidden states ``(batch, length, dim)`` of left-padded ``tokens`` given item vectors
        (``last_only``: the last slot's alone, ``(batch, 1, dim)``)."""
        start = self.sequence.item_embedding.weight[1:2]
        padding = torch.zeros_like(start)
        extended = torch.cat([padding, table, start])
        x = F.embedding(tokens, extended)
        placed = tokens != self.start_token
        return self.sequence.contextualize(x, tokens != PAD, placed, last_only)

    def logits(self, hidden: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Scores of every item ``(rows, n_items)`` for hidden states ``(rows, dim)``."""
        if self.cosine:
            hidden = F.normalize(hidden, dim=-1)
            table = F.normalize(table, dim=-1)
        return hidden @ table.T / self.temperature


class TextSeqNetwork(nn.Module):
    """:class:`TextSeqModule` plus the encoder being fine-tuned (``None`` when frozen).

    ``forward`` recomputes the language-model vectors of the ``fresh`` items with gradients
    and takes every other item's from the cache, so that one softmax covers the catalog.
    """

    def __init__(self, sequence: TextSeqModule, encoder: TunableEncoder | None) -> None:
        super().__init__()
        self.seq = sequence
        self.encoder = encoder

    def forward(
        self,
        tokens: torch.Tensor,
        fresh: torch.Tensor | None = None,
        fresh_inputs: torch.Tensor | None = None,
        fresh_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of ``tokens`` and the item table they were computed with.

        Args:
            tokens: ``(batch, length)`` left-padded tokens.
            fresh: Item indices whose vectors are recomputed by the encoder.
            fresh_inputs: Their token ids ``(n, tokens)``, or for ``top_k`` the hidden states
                entering the trained layers ``(n, tokens, width)``.
            fresh_mask: ``(n, tokens)`` attention mask of ``fresh_inputs``.
        """
        text = self.seq.text_vectors
        if self.encoder is not None and fresh is not None and len(fresh):
            assert fresh_inputs is not None and fresh_mask is not None
            if self.encoder.config.strategy == "top_k":
                vectors = self.encoder.upper_forward(fresh_inputs, fresh_mask)
            else:
                vectors = self.encoder(fresh_inputs, fresh_mask)
            text = text.index_put((fresh,), vectors.to(text.dtype))
        table = self.seq.item_table(text)
        return self.seq(tokens, table), table
