"""Typed experiment configuration, read from TOML.

An experiment file has four tables (and optional ``[ranking]`` and ``[diversity]`` stages)::

    [data]
    dataset = "ml-100k"          # a name or a path
    split = "leave_one_out"

    [model]
    type = "sasrec"              # picks the model; the other keys are its hyperparameters
    hidden_size = 64

    [evaluation]
    ks = [5, 10, 20, 50]

    [run]
    name = "sasrec-ml100k"
    seed = 42

Every value is validated when the file is read; a bad one raises
:class:`lmrec.errors.ConfigError` naming the field (``model.hidden_size``) and the value.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lmrec.data.loaders.tabular import TableSource
from lmrec.diversity import RECOMMENDED_LAM, DiversityConfig
from lmrec.errors import ConfigError
from lmrec.models.baselines import BPRConfig, ItemKNNConfig, PopConfig, SASRecConfig
from lmrec.models.ctr import CTRConfig
from lmrec.models.text import TextMeanConfig, TextSeqConfig
from lmrec.privacy.config import PrivacyConfig

ModelConfig = Annotated[
    PopConfig | ItemKNNConfig | BPRConfig | SASRecConfig | TextSeqConfig | TextMeanConfig,
    Field(discriminator="type"),
]

SplitMethod = Literal["leave_one_out", "temporal", "random", "cold_item", "cold_user"]


class DataConfig(BaseModel):
    """Which data to use and how to split it."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "ml-100k"
    """A dataset name (``ml-100k``, ``ml-1m``, ``ml-10m``, ``amazon-scientific``) or a path."""
    table: TableSource | None = None
    """Column mapping for a generic CSV/Parquet file; ``dataset`` is then ignored."""
    split: SplitMethod = "leave_one_out"
    """How interactions are divided into train, validation and test."""
    split_params: dict[str, float | int | str] = Field(default_factory=dict)
    """Extra arguments of the split (e.g. ``cold_frac = 0.15``, ``seed = 1``)."""
    implicit_threshold: float | None = None
    """Keep only interactions with rating >= this value; unset keeps all as implicit feedback."""
    deleted_users_from: str | None = None
    """The database URL of a service store (``sqlite:///runs/service.db``); the users deleted
    through it (``DELETE /v1/users``, ``lmrec users delete``) are left out of the data before
    the split (:mod:`lmrec.privacy.forgetting`). No password in the URL (``config.json``
    keeps it): use ``PGPASSWORD`` or ``~/.pgpass``."""

    @field_validator("deleted_users_from")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is not None and urlsplit(value).password:
            raise ValueError(
                "the URL holds a password, which config.json would keep; leave it out and "
                "use PGPASSWORD or ~/.pgpass"
            )
        return value


class EvaluationConfig(BaseModel):
    """How models are evaluated."""

    model_config = ConfigDict(extra="forbid")

    ks: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [5, 10, 20, 50])
    """Cut-offs for Recall/NDCG/MRR."""
    batch_size: int = Field(default=256, gt=0)
    """Users scored at once; memory grows as batch_size x catalog size."""
    list_k: int = Field(default=10, gt=0)
    """Length of the lists that coverage, diversity, novelty and Gini are computed on."""


class RunConfig(BaseModel):
    """Runtime options, kept apart from hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    """Run directory name under ``output_dir``; defaults to ``<model>-<dataset>``."""
    output_dir: Path = Path("runs")
    """Where run directories are written."""
    seed: int = 42
    """Seed of every random number generator."""
    threads: int | None = Field(default=None, gt=0)
    """Torch intra-op threads; unset keeps torch's default."""
    show_progress: bool = True
    """Show progress bars on long work."""


class RankingConfig(BaseModel):
    """The optional ranking stage: a CTR cross-encoder re-orders the retrieval top-N."""

    model_config = ConfigDict(extra="forbid")

    top_n: int = Field(default=50, gt=0)
    """Retrieval candidates the ranker re-orders per user."""
    model: CTRConfig = Field(default_factory=CTRConfig)
    """The CTR model (``[ranking.model]``; its ``type`` may be left out)."""
    eval_users: int | None = Field(default=1000, gt=0)
    """Users sampled (with ``run.seed``) for the ranker's validation and for the comparison
    before/after re-ranking: the cross-encoder reads ``top_n`` pairs per user, which on a CPU
    takes minutes per thousand users. ``None`` uses every user."""


class ExperimentConfig(BaseModel):
    """A whole experiment: data, model, evaluation, run options."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig
    ranking: RankingConfig | None = None
    """Add a CTR re-ranking stage after the retrieval model (a two-stage pipeline)."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    """Pseudonymous user ids and PII scrubbing, applied right after loading (``[privacy]``)."""
    diversity: DiversityConfig | None = None
    """Diversity re-ranking (``[diversity]``: ``method``, ``lam``, ``candidates``,
    ``max_per_category``): ``lmrec train`` also evaluates the re-ranked lists and stores the
    setting in ``pipeline.json`` as the run's default for ``Pipeline.recommend`` and
    ``lmrec recommend``. A table without ``lam`` takes the benchmark's recommended λ of its
    method (:data:`lmrec.diversity.RECOMMENDED_LAM`); ``lam = 0`` keeps the plain ranking.
    Without the table nothing is re-ranked."""

    @field_validator("diversity", mode="before")
    @classmethod
    def _recommended_lam(cls, value: Any) -> Any:
        if isinstance(value, dict) and "lam" not in value:
            method = value.get("method", "mmr")
            if method in RECOMMENDED_LAM:  # otherwise validation names the bad method
                return {**value, "lam": RECOMMENDED_LAM[method]}
        return value

    def run_name(self) -> str:
        if self.run.name:
            return self.run.name
        data = self.data.table.path.stem if self.data.table else self.data.dataset
        return f"{self.model.type}-{Path(data).name}"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    extra = f"; {len(error.errors()) - 1} more problem(s)" if len(error.errors()) > 1 else ""
    return f"{loc}: {first['msg']}{shown}{extra}"


def parse_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config mapping; raise :class:`ConfigError` naming the first bad field."""
    if "model" not in raw:
        raise ConfigError(f'{source}: the [model] table is missing (e.g. type = "sasrec")')
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_describe(e)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read and validate a TOML experiment file.

    Args:
        path: The TOML file.
        overrides: Dotted keys to set after reading, e.g. ``{"run.seed": 1}``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    for key, value in (overrides or {}).items():
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(raw, str(path))
