"""What a run leaves behind: a JSON record, Markdown tables and learning-curve plots."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from lmrec.errors import ModelFileError

_VERSIONED_PACKAGES = ("lmrec", "torch", "numpy", "pandas", "scipy")
MISSING = "–"
"""How :func:`markdown_table` shows a missing value."""


def package_versions() -> dict[str, str]:
    """Python's version and those of lmrec and its main dependencies that are installed."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def current_git_commit() -> str | None:
    """The commit checked out in the working directory; ``None`` outside a git repository."""
    return _git("rev-parse", "HEAD") or None


def current_git_dirty() -> bool | None:
    """Whether tracked files differ from the commit; ``None`` outside a git repository."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """One training-and-evaluation run, enough to compare and reproduce it.

    The environment fields (versions, git state, creation time) fill themselves in when
    left out.

    Attributes:
        model: The model's name (``"sasrec"``).
        config: The model's hyperparameters.
        dataset: The dataset's name.
        dataset_fingerprint: :meth:`lmrec.data.schema.Dataset.fingerprint` of the data.
        split: The split's name under ``"method"`` and its parameters beside it, e.g.
            ``{"method": "leave_one_out", "valid": True}``.
        metrics: Flat metric dict, e.g. :attr:`EvalResult.metrics` or
            :meth:`EvalResult.with_prefix`.
        slice_metrics: Slice metrics as in :attr:`EvalResult.slices`.
        standard_errors: Standard errors of the accuracy metrics' means over users, as in
            :attr:`EvalResult.standard_errors` (empty in records written before them).
        train_seconds: Wall time of training.
        eval_seconds: Wall time of evaluation.
        fit: What training reported (``FitReport.to_dict()``: ``epochs``, ``best_epoch``,
            ``seconds_to_best``, ...); empty for a model without epochs.
        ranking: The ranking stage of a pipeline, when there is one: the CTR model's
            held-out metrics and the retrieval metrics before and after re-ranking on the
            sampled test users.
        privacy: The differential-privacy guarantee of a model trained with DP-SGD
            (``epsilon`` at ``delta``, ``noise_multiplier``, ``max_grad_norm``,
            ``sample_rate``, ``steps``, ``accountant``, ``unit``; see
            :meth:`lmrec.privacy.dp.DPTrainer.privacy_report`); empty otherwise. A DP ranker's
            is in ``ranking["fit"]["privacy"]``.
        diversity: The ``[diversity]`` stage, when configured: its setting and the test
            metrics (NDCG, Recall, ILD, coverage, Gini, long-tail share) before and after
            re-ranking.
        versions: Python and package versions.
        git_commit: Commit of the working directory, ``None`` outside git.
        git_dirty: Whether tracked files had uncommitted changes.
        created_at: ISO-8601 time in UTC.
    """

    model: str
    config: dict[str, Any]
    dataset: str
    dataset_fingerprint: str
    split: dict[str, Any]
    metrics: dict[str, float]
    slice_metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    standard_errors: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    fit: dict[str, Any] = field(default_factory=dict)
    ranking: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)
    diversity: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    git_commit: str | None = field(default_factory=current_git_commit)
    git_dirty: bool | None = field(default_factory=current_git_dirty)
    created_at: str = field(default_factory=_utc_now)

    @property
    def split_name(self) -> str | None:
        """The split method, ``split["method"]``, when given."""
        name = self.split.get("method")
        return None if name is None else str(name)

    @property
    def epochs(self) -> int | None:
        """Epochs trained, from :attr:`fit`; ``None`` when not reported."""
        value = self.fit.get("epochs")
        return None if value is None else int(value)

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose weights were kept, from :attr:`fit`; ``None`` when not reported."""
        value = self.fit.get("best_epoch")
        return None if value is None else int(value)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready Python values."""
        converted: dict[str, Any] = json.loads(self.to_json())
        return converted

    def to_json(self) -> str:
        """The record as indented JSON; numpy values become plain numbers and lists."""
        return json.dumps(asdict(self), indent=2, default=_json_default, allow_nan=True)

    def write(self, path: str | Path) -> Path:
        """Write the JSON atomically: a temporary file in the same folder, then a rename.

        Args:
            path: The target file; missing parent folders are created.

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """Read a record written by :meth:`write`; unknown keys are ignored.

        Raises:
            ModelFileError: When the file is missing, not JSON, or lacks a required field.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(f"{path}: no run record there") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{path}: not a JSON run record ({exc})") from None
        if not isinstance(data, dict):
            raise ModelFileError(f"{path}: a run record must be a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ModelFileError(f"{path}: incomplete run record ({exc})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a run record")


# -- tables --------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _cell(value: Any, float_fmt: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float | np.floating):
        return MISSING if math.isnan(value) else format(float(value), float_fmt)
    return str(value).replace("|", "\\|")


def markdown_table(
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    title: str | None = None,
    float_fmt: str = ".4f",
) -> str:
    """A Markdown (GitHub) table of ``rows``, one column per name in ``columns``.

    Floats use ``float_fmt``; a missing key, ``None`` or NaN shows as ``"–"``. Columns whose
    values are all numbers are right-aligned.

    Args:
        rows: One dict per table row, e.g. ``{"model": "sasrec", "ndcg@10": 0.07}``.
        columns: The keys to show, in order; also the header.
        title: Optional heading put above the table.
        float_fmt: Format spec for floats.

    Returns:
        The table, ending with a newline.
    """
    if not columns:
        raise ValueError("markdown_table needs at least one column")
    cells = [[_cell(row.get(col), float_fmt) for col in columns] for row in rows]
    numeric = [
        all(_is_number(row[col]) for row in rows if row.get(col) is not None) for col in columns
    ]
    header = [c.replace("|", "\\|") for c in columns]
    widths = [max([len(header[j]), 3, *(len(r[j]) for r in cells)]) for j in range(len(columns))]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric, strict=True)
    ]
    lines = [line(header), "| " + " | ".join(rule) + " |", *(line(r) for r in cells)]
    text = "\n".join(lines) + "\n"
    return f"### {title}\n\n{text}" if title else text


def ratio_columns(
    rows: list[dict[str, Any]], baseline_model: str, metric: str
) -> list[dict[str, Any]]:
    """Copies of ``rows`` with a ``"vs <baseline>"`` column: ``metric`` over the baseline's.

    Rows are matched on their ``"model"`` key. The ratio is ``None`` where the row lacks the
    metric or the baseline's value is zero or missing.

    Args:
        rows: Table rows as for :func:`markdown_table`.
        baseline_model: The ``"model"`` value of the baseline row.
        metric: The column to compare, e.g. ``"ndcg@10"``.

    Returns:
        New row dicts; the input is left unchanged.

    Raises:
        ValueError: When no row has ``model == baseline_model``.
    """
    base_row = next((r for r in rows if r.get("model") == baseline_model), None)
    if base_row is None:
        models = [r.get("model") for r in rows]
        raise ValueError(f"baseline model {baseline_model!r} is not among the rows {models}")
    base = float(base_row[metric]) if _is_number(base_row.get(metric)) else math.nan
    column = f"vs {baseline_model}"
    out = []
    for row in rows:
        value = row.get(metric)
        ratio: float | None = None
        if _is_number(value) and base != 0 and not math.isnan(base):
            ratio = float(row[metric]) / base
        out.append({**row, column: ratio})
    return out


# -- plots ---------------------------------------------------------------------------------
def plot_learning_curve(history: list[dict[str, float]], path: str | Path, metric: str) -> Path:
    """Plot ``metric`` per epoch as a PNG, marking its best value.

    Args:
        history: One dict per epoch (e.g. :attr:`FitReport.history`); the x value is the
            entry's ``"epoch"`` when present, else its 1-based position. Entries without
            ``metric`` are skipped.
        path: The PNG to write; missing parent folders are created.
        metric: The key to plot, e.g. ``"valid_ndcg@10"`` or ``"loss"``.

    Returns:
        The path written.

    Raises:
        ValueError: When no entry has ``metric``.
    """
    points = [
        (float(h.get("epoch", i + 1)), float(h[metric]))
        for i, h in enumerate(history)
        if h.get(metric) is not None
    ]
    if not points:
        raise ValueError(f"no history entry has the metric {metric!r}")
    # Imported here: matplotlib is slow to import and only plots need it. Figure +
    # FigureCanvasAgg draw off-screen without touching pyplot's global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys = zip(*points, strict=True)
    lower_is_better = "loss" in metric.lower()
    best = int(np.argmin(ys) if lower_is_better else np.argmax(ys))
    fig = Figure(figsize=(6, 4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(xs, ys, marker="o", markersize=3, label=metric)
    ax.scatter([xs[best]], [ys[best]], color="tab:red", zorder=3, label=f"best {ys[best]:.4g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.print_png(str(path))
    return path
