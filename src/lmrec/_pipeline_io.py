"""Reading a pipeline from a run directory and writing one back into it (:class:`Pipeline`'s
``load`` and ``update_run``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lmrec.errors import ModelFileError
from lmrec.models import load_model
from lmrec.pipeline import CATALOG_FILE, PIPELINE_FILE, Pipeline


def update_run(pipeline: Pipeline, run_dir: Path) -> None:
    """See :meth:`Pipeline.update_run`."""
    if not (run_dir / "model").is_dir():
        raise ModelFileError(f"{run_dir} holds no model (expected {run_dir / 'model'})")
    staging = Path(tempfile.mkdtemp(prefix=".update-", dir=run_dir))
    try:
        pipeline.save(staging)
        for name in ("model", "ranker", CATALOG_FILE, PIPELINE_FILE):
            new, final = staging / name, run_dir / name
            if not new.exists():
                continue
            if new.is_dir():
                if final.exists():
                    final.rename(staging / f"{name}.old")
                new.rename(final)
            else:
                new.replace(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_pipeline(cls: type[Pipeline], run_dir: Path) -> Pipeline:
    """See :meth:`Pipeline.load`."""
    if not (run_dir / "model").is_dir():
        raise ModelFileError(f"{run_dir} holds no model (expected {run_dir / 'model'})")
    retrieval = load_model(run_dir / "model")
    meta: dict[str, Any] = {}
    if (run_dir / PIPELINE_FILE).exists():
        meta = json.loads((run_dir / PIPELINE_FILE).read_text())
    ranker = None
    if meta.get("ranker"):
        from lmrec.models.ctr import CTRModel

        ranker = CTRModel.load(run_dir / "ranker")
    catalog: dict[str, dict[str, Any]] = {}
    if (run_dir / CATALOG_FILE).exists():
        rows = json.loads((run_dir / CATALOG_FILE).read_text())
        catalog = {r["item_id"]: {k: v for k, v in r.items() if k != "item_id"} for r in rows}
    pipeline = cls(retrieval, ranker, int(meta.get("top_n", 50)), catalog)
    pipeline.dataset = _run_dataset(run_dir)
    if meta.get("cold_start") is not None:
        from lmrec.coldstart import ColdStartConfig

        pipeline.cold_start = ColdStartConfig.model_validate(meta["cold_start"])
    if meta.get("diversity") is not None:
        from lmrec.diversity import DiversityConfig
        from lmrec.models.baselines._config_build import build_config

        pipeline.diversity = build_config(DiversityConfig, meta["diversity"])
    return pipeline


def _run_dataset(run_dir: Path) -> str:
    """The dataset name of the run's ``config.json`` (``""`` when there is none)."""
    try:
        config = json.loads((run_dir / "config.json").read_text())
        return str(config["data"]["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
