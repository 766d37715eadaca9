"""Exact top-n items of inner-product scores over a large catalog, without sorting it.

Retrieval models that score ``query · item`` (SASRec and the text sequential models) answer
"the ``n`` best items for these queries" with :class:`DotTopTable` when the catalog is large.
The answer is the one the full score rows give (same items, same order, ties to the lower
item index; scores equal to float32 rounding), found in three cheap passes:

1. A coarse product in bfloat16 (AMX / AVX512-BF16 make it ~3x faster than float32 here), or
   in float32 where the CPU lacks bfloat16 support.
2. The catalog is cut into blocks of ``block`` items; each block's best coarse score is
   taken. The ``n``-th best block maximum is at most the ``n``-th best coarse score.
3. Every coarse score is within ``eps = c * |q| * max|v|`` of the float32 score (``c``
   bounds the rounding of bfloat16 inputs, the float32 sum and the bfloat16 output; see
   :func:`error_bound`). So an item whose exact score reaches the ``n``-th best exact score
   has a coarse score of at least ``T = (n-th best block maximum) - 2 * eps``. Only blocks
   with a maximum of at least ``T`` can hold such items; in them, the ``n``-th best coarse
   score gives a tighter cut ``T'`` (the same argument), and the items at or above it (a
   few more than ``n`` on a 100,000-item catalog) are scored again in float32 and sorted.

Rows whose query or items are not finite, or that leave fewer than ``n`` eligible blocks,
take the plain path: the full float32 row and :func:`lmrec.models.ctr.top_candidates`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

FAST_TOP_MIN_ITEMS = 20_000
"""Catalogs from this size on use :class:`DotTopTable` in ``top_items``; smaller ones score
full rows (as fast there, and simpler)."""

MIN_ROWS = 3
"""Fewer queries than this take the plain path: the coarse pass streams the whole table
either way, and its extra steps cost more than they save for one or two rows."""

_BF16_U = 2.0**-8  # unit roundoff of bfloat16 (8 significant bits)
_F32_U = 2.0**-24


def bf16_matmul_fast() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX or AVX512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    except RuntimeError:  # pragma: no cover - a torch build without the probes
        return False


def error_bound(dim: int, coarse: torch.dtype) -> float:
    """``c`` such that ``|coarse score - float32 score| <= c * |q| * |v|`` for every item.

    bfloat16: the query and the item are rounded (``u`` each), the float32 sum adds at most
    ``dim`` float32 roundings, and the product is rounded to bfloat16 (``u``); ``3u`` plus
    second-order terms, with a margin. The float32 score itself may differ from the real
    product by the float32 sum's error, counted twice (coarse and exact). Float32 coarse
    scores differ from the exact ones only by summation order.
    """
    # + 4 float32 units: dividing by a temperature may round two nearby scores to a tie
    float_sums = (2.0 * (dim + 2) + 4.0) * _F32_U * 1.01
    if coarse == torch.bfloat16:
        return 3.1 * _BF16_U + float_sums
    return float_sums


class DotTopTable:
    """An item table ``(n_items, dim)`` prepared for exact top-n inner-product search.

    Args:
        items: Float32 item vectors (the model's output table), one row per item.
        divisor: Scores are ``(q · v) / divisor`` (a softmax temperature; 1: none).
        block: Items per block of the coarse pass (``None``: 64 for catalogs of 64k items
            and more, down to 4 for small ones, so that there are over 1,000 blocks).
        coarse: The coarse pass's dtype (``None``: bfloat16 where the CPU is fast at it).
    """

    def __init__(
        self,
        items: torch.Tensor,
        divisor: float = 1.0,
        block: int | None = None,
        coarse: torch.dtype | None = None,
    ) -> None:
        if items.ndim != 2:
            raise ValueError(f"items must be (n_items, dim), got shape {tuple(items.shape)}")
        self.items = items.detach().to(torch.float32).contiguous()
        self.n_items, self.dim = self.items.shape
        self.divisor = float(divisor)
        if block is None:
            block = min(64, max(4, 1 << max(self.n_items // 1024, 1).bit_length() - 1))
        if block < 1:
            raise ValueError(f"block must be at least 1, got {block}")
        self.block = block
        self.coarse_dtype = coarse or (torch.bfloat16 if bf16_matmul_fast() else torch.float32)
        self.n_blocks = -(-self.n_items // block)
        padded = torch.zeros(self.n_blocks * block, self.dim, dtype=self.coarse_dtype)
        padded[: self.n_items] = self.items.to(self.coarse_dtype)
        self.coarse = padded
        norms = self.items.norm(dim=1) if self.n_items else torch.zeros(0)
        self.finite = bool(torch.isfinite(self.items).all())
        self.max_norm = float(norms.max()) if self.n_items else 0.0
        self.bound = error_bound(self.dim, self.coarse_dtype)

    def usable_for(self, n: int) -> bool:
        """Whether the block pass pays off for ``n`` items (far fewer than the blocks)."""
        return self.finite and self.n_items > 0 and 0 < n <= self.n_blocks // 8

    def scores(self, queries: torch.Tensor) -> torch.Tensor:
        """Full float32 score rows ``(len(queries), n_items)``, as the model computes them."""
        return queries @ self.items.T / self.divisor

    def top(
        self, queries: torch.Tensor, n: int, masked: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the ``n`` best items and their scores, best first.

        Args:
            queries: ``(rows, dim)`` float32 query vectors.
            n: How many items per row (fewer when fewer are eligible).
            masked: Per row, item indices never to return (the history, withdrawn items).

        Returns:
            Per row, int64 item indices and float32 scores; ties go to the lower index.
        """
        queries = queries.detach().to(torch.float32)
        rows = len(queries)
        if rows == 0:
            return []
        if not self.usable_for(n) or rows < MIN_ROWS:
            return self._plain(queries, n, masked)
        # (items, rows): the table on the left is ~2x faster than on the right with oneDNN
        coarse = self.coarse @ queries.to(self.coarse_dtype).T
        coarse[self.n_items :] = -torch.inf
        flat = [np.asarray(m, dtype=np.int64) * rows + r for r, m in enumerate(masked) if len(m)]
        if flat:
            coarse.view(-1).index_fill_(0, torch.from_numpy(np.concatenate(flat)), -torch.inf)
        best = _block_maxima(coarse, self.block).T.float()  # (rows, n_blocks)
        nth = torch.topk(best, n, dim=1).values[:, -1]
        eps = self.bound * queries.norm(dim=1) * self.max_norm
        cut = nth - 2.0 * eps
        plain = ~torch.isfinite(cut)  # fewer than n blocks with an eligible item, or a NaN
        cut = torch.where(plain, torch.zeros_like(cut), cut)
        n_blocks = int((best >= cut[:, None]).sum(dim=1).max())
        chosen = torch.topk(best, n_blocks, dim=1, sorted=False).indices  # (rows, n_blocks)
        offsets = torch.arange(self.block)
        index = (chosen[:, :, None] * self.block + offsets).reshape(rows, -1)
        values = torch.gather(coarse.T, 1, index).float()
        # every item with a coarse score >= cut is in these blocks, the n best included: the
        # n-th best value here is the n-th best coarse score, a tighter cut than the blocks'
        nth = torch.topk(values, n, dim=1, sorted=False).values.amin(dim=1)
        cut = torch.maximum(cut, nth - 2.0 * eps)
        keep = values >= cut[:, None]
        picks = int(keep.sum(dim=1).max())
        picked = torch.topk(values.masked_fill(~keep, -torch.inf), picks, dim=1, sorted=False)
        candidates = torch.gather(index, 1, picked.indices)  # (rows, picks)
        valid = torch.isfinite(picked.values)
        # ties go to the lower index: order by index, then stably by exact score
        candidates, by_index = torch.sort(candidates, dim=1)
        valid = torch.gather(valid, 1, by_index)
        vectors = self.items.index_select(0, candidates.clamp(max=self.n_items - 1).reshape(-1))
        exact = torch.bmm(vectors.view(rows, picks, self.dim), queries[:, :, None])[:, :, 0]
        exact = (exact / self.divisor).masked_fill(~valid, -torch.inf)
        exact, by_score = torch.sort(exact, dim=1, descending=True, stable=True)
        candidates = torch.gather(candidates, 1, by_score)
        ids = candidates[:, :n].numpy()
        scores = exact[:, :n].numpy()
        counts = torch.isfinite(exact[:, :n]).sum(dim=1).tolist()
        plain |= torch.isnan(exact).any(dim=1) | (exact == torch.inf).any(dim=1)  # overflow
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * rows
        for r in range(rows):
            if not plain[r]:
                out[r] = (ids[r, : counts[r]].astype(np.int64), scores[r, : counts[r]].copy())
        redo = [r for r in range(rows) if out[r] is None]
        if redo:
            again = self._plain(queries[redo], n, [masked[r] for r in redo])
            for r, answer in zip(redo, again, strict=True):
                out[r] = answer
        return [a for a in out if a is not None]

    def _plain(
        self, queries: torch.Tensor, n: int, masked: Sequence[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        from lmrec.models.ctr._rerank import rows_top

        return rows_top(self.scores(queries).numpy(), masked, n)


def _block_maxima(scores: torch.Tensor, block: int) -> torch.Tensor:
    """``scores.view(-1, block, rows).amax(dim=1)`` as a tree of elementwise maxima (torch's
    reduction across the middle axis is ~6x slower here); exact in any dtype."""
    x = scores.view(-1, block, scores.shape[-1])
    while x.shape[1] > 1:
        size = x.shape[1]
        half = size // 2
        folded = torch.maximum(x[:, :half], x[:, half : 2 * half])
        if size % 2:  # the odd one out joins the first slot
            folded[:, :1] = torch.maximum(folded[:, :1], x[:, 2 * half :])
        x = folded
    return x[:, 0]
