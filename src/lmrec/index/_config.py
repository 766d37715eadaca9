"""How a :class:`~lmrec.index.VectorIndex` is built and searched: :class:`IndexConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lmrec.models.baselines._config_build import build_config

IndexKind = Literal["flat", "hnsw"]
Metric = Literal["ip", "cosine"]


class IndexConfig(BaseModel):
    """How a :class:`VectorIndex` is built and searched."""

    model_config = ConfigDict(extra="forbid")

    metric: Metric = "ip"
    """``"ip"``: inner product of the vectors as given; ``"cosine"``: vectors and queries are
    L2-normalised first (a zero vector stays zero and scores 0 with everything)."""
    hnsw_threshold: int = Field(default=50_000, ge=0)
    """Use HNSW from this many live items on, an exact flat index below (0: always HNSW)."""
    hnsw_m: int = Field(default=16, ge=2, le=256)
    """HNSW: neighbours per node; more gives higher recall, more memory and slower builds
    (on 100k 128-d item vectors M=32 gained under 0.01 recall@10 over M=16 at the same
    ``ef_search`` and built more slowly: ``bench/results/index.md``)."""
    ef_construction: int = Field(default=100, ge=1)
    """HNSW: candidate list size while building; more gives a better graph, slower build."""
    ef_search: int = Field(default=256, ge=1)
    """HNSW: candidate list size while searching (raised to ``k`` when smaller); more gives
    higher recall and slower queries (256: recall@10 0.98 on 100k 128-d vectors at about a
    millisecond per query on one core, ``bench/results/index.md``).
    :meth:`VectorIndex.search` can override it per call."""
    compact_ratio: float | None = Field(default=0.25, gt=0.0, le=1.0)
    """Rebuild from the live vectors when dead (removed or replaced) rows exceed this share
    of all rows; ``None``: only when :meth:`VectorIndex.compact` is called."""


def index_config(
    config: IndexConfig | Mapping[str, Any] | None = None, **fields: Any
) -> IndexConfig:
    """A validated :class:`IndexConfig` from a config, a dict and/or keyword fields.

    Raises:
        ConfigError: A field is unknown or invalid; the message names it and the value.
    """
    return build_config(IndexConfig, config, **fields)
