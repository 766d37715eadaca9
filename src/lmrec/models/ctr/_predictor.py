"""The CTR model: fit on interactions, predict P(click | user, item), evaluate, save, load.

:class:`CTRModel` is not a catalog recommender: it scores given (user, item) pairs, e.g. the
candidates a retrieval model proposes (see :mod:`lmrec.models.ctr._rerank`). A user is read
through a text profile (recent titles and attributes), never through an id, so a user
unseen in training is scored from their history alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from lmrec.data.schema import Dataset, InteractionData
from lmrec.data.splitting import EncodedSplit
from lmrec.errors import ConfigError, DataError, ModelFileError, NotFittedError
from lmrec.evaluation.metrics import auc, gauc, log_loss
from lmrec.models.base import FitOptions, FitReport
from lmrec.models.baselines._config_build import build_config
from lmrec.models.ctr._catalog import CTRCatalog
from lmrec.models.ctr._config import CTRConfig
from lmrec.models.ctr._examples import CTRExamples, interaction_examples, split_examples
from lmrec.models.ctr._model import CrossEncoderCTR, CTRHead
from lmrec.models.ctr._pairs import PairEncoder
from lmrec.models.ctr._training import PairTask, VectorTask, run_batched
from lmrec.text.config import TextEncoderConfig
from lmrec.text.encoder import ItemTextEncoder
from lmrec.text.tuning import TunableEncoder
from lmrec.training.config import RunOptions
from lmrec.training.trainer import (
    CheckpointValue,
    ValidateFn,
    seed_everything,
    trainer_for,
)

_META_FILE = "ctr.json"
_HEAD_FILE = "head.pt"
_ENCODER_FILE = "encoder.pt"
_FORMAT = 1


def ctr_metrics(
    examples: CTRExamples,
    probs: np.ndarray,
    rating_range: tuple[float, float] | None = None,
) -> dict[str, float]:
    """AUC, GAUC (per user), LogLoss and counts of predictions against example labels.

    Args:
        examples: The examples (their ``labels`` and ``users``).
        probs: Predicted click / like probabilities, one per example.
        rating_range: With ``(lowest, highest)`` rating, ``probs`` are read as scaled
            ratings and ``rmse`` on the rating scale is added for rated examples.

    Returns:
        ``auc``, ``gauc``, ``logloss``, ``n_examples``, ``positive_rate`` and
        ``gauc_users`` (users with both classes, the only ones GAUC averages over); ``auc``
        / ``gauc`` are NaN when no (user's) examples hold both classes.

    Raises:
        DataError: There are no examples.
    """
    n = len(examples)
    if n == 0:
        raise DataError("CTR metrics need at least one example, got none")
    labels = examples.labels
    out: dict[str, float] = {
        "n_examples": float(n),
        "positive_rate": float(labels.mean()),
        "auc": auc(labels, probs) if labels.min() != labels.max() else math.nan,
        "logloss": log_loss(labels, probs),
    }
    users, codes = np.unique(examples.users, return_inverse=True)
    pos = np.bincount(codes, weights=labels, minlength=len(users))
    size = np.bincount(codes, minlength=len(users))
    mixed = int(((pos > 0) & (pos < size)).sum())
    out["gauc"] = gauc(examples.users, labels, probs) if mixed else math.nan
    out["gauc_users"] = float(mixed)
    if rating_range is not None:
        rated = np.isfinite(examples.ratings)
        if rated.any():
            low, high = rating_range
            predicted = low + np.asarray(probs, dtype=np.float64)[rated] * (high - low)
            out["rmse"] = float(np.sqrt(np.mean((predicted - examples.ratings[rated]) ** 2)))
    return out


class CTRModel:
    """Click / like prediction with a language-model cross-encoder over (profile, item) text.

    ``fit`` trains on a dataset's interactions (labels as in :mod:`lmrec.models.ctr._examples`)
    with the shared trainer: AdamW, warm-up and decay, weight decay, dropout, early stopping
    on validation AUC when validation examples are given, checkpoints and resume through the
    fit options' ``work_dir``.

    Args:
        config: A :class:`CTRConfig`, a dict of its fields, or ``None`` for the defaults.
        options: Runtime options of the trainer (device, checkpoint / log files).
        **overrides: Config fields that replace those of ``config``.

    Raises:
        ConfigError: A field is unknown or invalid (the message names it).
    """

    name: ClassVar[str] = "ctr"

    def __init__(
        self,
        config: CTRConfig | Mapping[str, Any] | None = None,
        *,
        options: RunOptions | None = None,
        **overrides: Any,
    ) -> None:
        self.config = build_config(CTRConfig, config, **overrides)
        self.options = options if options is not None else RunOptions()
        self.fit_options = FitOptions()
        self.catalog: CTRCatalog | None = None
        self.network: CrossEncoderCTR | None = None
        self.pairs: PairEncoder | None = None
        self.rating_range: tuple[float, float] | None = None

    # -- examples -------------------------------------------------------------------------
    def training_examples(
        self, train: InteractionData, users: Collection[int] | None = None
    ) -> CTRExamples:
        """The training examples of ``train`` (of ``users`` only, when given), subsampled to
        ``max_examples`` with the trainer's seed."""
        c = self.config
        examples = interaction_examples(
            train,
            users=users,
            profile_items=c.history_items,
            positive_threshold=c.positive_threshold,
            negatives_per_positive=c.negatives_per_positive,
            seed=c.trainer.seed,
        )
        return examples.sample(c.max_examples, seed=c.trainer.seed)

    def heldout_examples(
        self,
        split: EncodedSplit,
        part: Literal["valid", "test"],
        users: Collection[int] | None = None,
    ) -> CTRExamples:
        """Examples from the ``valid`` or ``test`` interactions of a split, labelled and
        profiled with this model's settings (see :func:`split_examples`)."""
        c = self.config
        return split_examples(
            split,
            part,
            users=users,
            profile_items=c.history_items,
            positive_threshold=c.positive_threshold,
            negatives_per_positive=c.negatives_per_positive,
            seed=c.trainer.seed + (1 if part == "valid" else 2),
        )

    # -- fitting --------------------------------------------------------------------------
    def fit(
        self,
        dataset: Dataset,
        train: InteractionData,
        valid: CTRExamples | None = None,
        options: FitOptions | None = None,
        *,
        examples: CTRExamples | None = None,
    ) -> FitReport:
        """Train on the interactions ``train`` of ``dataset``.

        Args:
            dataset: Where item texts, titles and user attributes come from.
            train: Training interactions, encoded with the dataset's id maps.
            valid: Validation examples (e.g. :meth:`heldout_examples`); they drive early
                stopping on ``trainer.monitor``. ``None`` trains all epochs.
            options: Work directory (checkpoints, JSONL log), resume, progress bars.
            examples: Training examples built beforehand; ``None`` builds them with
                :meth:`training_examples` from ``train``.

        Returns:
            Epochs, seconds and the best validation metrics.

        Raises:
            DataError: No training examples, a single class, or one-class validation.
            ConfigError: ``mse`` without ratings, or a text / user field that is no column.
        """
        self.fit_options = options or FitOptions()
        cfg = self.config
        if cfg.trainer.private:
            from lmrec.privacy.dp import check_private_strategy

            check_private_strategy(cfg.tuning.strategy)
        if cfg.objective == "mse" and train.ratings is None:
            raise ConfigError(
                "objective: 'mse' regresses explicit ratings, but the training data has no "
                "ratings; use 'bce'"
            )
        catalog = CTRCatalog.from_dataset(
            dataset,
            train.user_map,
            train.item_map,
            text_fields=cfg.text_fields,
            user_fields=cfg.user_fields,
        )
        if examples is None:
            examples = self.training_examples(train)
        self._check_examples(examples, valid)
        if cfg.objective == "mse":
            assert train.ratings is not None
            low, high = float(train.ratings.min()), float(train.ratings.max())
            if high <= low:
                raise DataError(f"objective 'mse' needs distinct ratings, all are {low:g}")
            self.rating_range = (low, high)
        seed_everything(cfg.trainer.seed)
        self.catalog = catalog
        self.network, self.pairs = self._build(catalog)
        show = self.fit_options.show_progress
        trainer_config = cfg.trainer
        if show and not trainer_config.show_progress:
            trainer_config = trainer_config.model_copy(update={"show_progress": True})

        network = self.network
        targets = torch.from_numpy(self._targets(examples))
        train_ids = self._pair_ids(examples)
        valid_ids = self._pair_ids(valid) if valid is not None else None
        validate: ValidateFn | None = None
        task: VectorTask | PairTask
        if network.encoder.trains_encoder:
            task = PairTask(
                network,
                train_ids,
                targets,
                trainer_config.batch_size,
                cfg.objective,
                network.encoder.encoder.pad,
            )
            network.encoder.set_total_steps(trainer_config.epochs * task.num_batches())
            if valid is not None and valid_ids is not None:
                examples_valid, ids_valid = valid, valid_ids

                def validate() -> dict[str, float]:
                    return self._validation_metrics(examples_valid, self._logits(ids_valid))

        else:
            # Nothing below the head trains: each pair's vector is computed once.
            vectors = self._vectors(train_ids, show, "train pairs")
            task = VectorTask(
                network.head,
                torch.from_numpy(vectors),
                targets,
                trainer_config.batch_size,
                cfg.objective,
            )
            if valid is not None and valid_ids is not None:
                examples_valid = valid
                valid_vectors = torch.from_numpy(self._vectors(valid_ids, show, "valid pairs"))

                def validate() -> dict[str, float]:
                    device = next(network.head.parameters()).device
                    logits = network.head(valid_vectors.to(device)).float().cpu().numpy()
                    return self._validation_metrics(examples_valid, logits)

        trainer = trainer_for(trainer_config, self._run_options(), cfg.tuning.lr_scale)
        try:
            return trainer.fit(task, validate, checkpoint_key=self._checkpoint_key(examples))
        finally:
            network.eval()

    def _check_examples(self, examples: CTRExamples, valid: CTRExamples | None) -> None:
        if len(examples) == 0:
            raise DataError("the CTR model needs at least one training interaction, got none")
        if self.config.objective == "bce" and examples.labels.min() == examples.labels.max():
            kind = "positive" if examples.labels[0] > 0 else "negative"
            raise DataError(
                f"every training example is {kind}; with positive_threshold="
                f"{self.config.positive_threshold:g} the labels need both classes"
            )
        if valid is None:
            return
        if len(valid) == 0:
            raise DataError("the validation examples are empty; pass None to train without")
        monitor = self.config.trainer.monitor
        if monitor in ("auc", "gauc") and valid.labels.min() == valid.labels.max():
            raise DataError(
                f"the validation examples hold one class only, so their {monitor} (the "
                "early-stopping monitor) is undefined"
            )

    def _targets(self, examples: CTRExamples) -> np.ndarray:
        if self.config.objective == "bce":
            return examples.labels.astype(np.float32)
        assert self.rating_range is not None
        low, high = self.rating_range
        if not np.isfinite(examples.ratings).all():
            raise DataError("objective 'mse' needs a rating on every training example")
        return np.clip((examples.ratings - low) / (high - low), 0.0, 1.0).astype(np.float32)

    def _validation_metrics(self, examples: CTRExamples, logits: np.ndarray) -> dict[str, float]:
        probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        m = ctr_metrics(examples, probs)
        return {
            "auc": m["auc"],
            "gauc": m["gauc"],
            "logloss": m["logloss"],
            "neg_logloss": -m["logloss"],
        }

    def _checkpoint_key(self, examples: CTRExamples) -> dict[str, CheckpointValue]:
        # A checkpoint resumes only for the same model settings and the same examples.
        model = self.config.model_dump(mode="json", exclude={"trainer", "score_batch_size"})
        h = hashlib.sha256()
        for array in (examples.users, examples.items, examples.labels, examples.profiles):
            h.update(np.ascontiguousarray(array).tobytes())
        catalog = self._require(self.catalog)
        for text in catalog.item_texts:
            h.update(text.encode() + b"\0")
        return {"model": json.dumps(model, sort_keys=True), "train_data": h.hexdigest()}

    def _run_options(self) -> RunOptions:
        # Explicit RunOptions win; the fit options fill in what they leave open.
        fit = self.fit_options
        opts = RunOptions(**vars(self.options))
        if fit.work_dir is not None:
            if opts.checkpoint_dir is None:
                opts.checkpoint_dir = Path(fit.work_dir) / "checkpoints"
                opts.resume = fit.resume
            if opts.log_path is None:
                opts.log_path = Path(fit.work_dir) / "train_log.jsonl"
        return opts

    def add_items(self, texts: Mapping[str, str], titles: Mapping[str, str]) -> None:
        """Score new items from their text (the cross-encoder needs nothing else), or replace
        the text of known ones; see :meth:`CTRCatalog.add_items`."""
        catalog: CTRCatalog = self._require(self.catalog)
        pairs: PairEncoder = self._require(self.pairs)
        catalog.add_items(texts, titles)
        self.pairs = PairEncoder(pairs.tokenizer, catalog.item_texts, pairs.max_length)

    # -- the network ----------------------------------------------------------------------
    def _build(self, catalog: CTRCatalog) -> tuple[CrossEncoderCTR, PairEncoder]:
        c = self.config
        encoder = ItemTextEncoder(
            TextEncoderConfig(
                model=c.model,
                normalize=False,
                max_length=c.max_length,
                batch_size=c.score_batch_size,
                cache=False,
            ),
            device=self.options.device,
        )
        tunable = TunableEncoder(encoder, c.tuning)
        head = CTRHead(encoder.dim, c.head_hidden, c.dropout)
        network = CrossEncoderCTR(tunable, head).to(self.options.device)
        network.eval()
        pairs = PairEncoder(encoder.tokenizer, catalog.item_texts, c.max_length)
        return network, pairs

    def _profile_shape(self) -> tuple[int | None, int]:
        """Titles and categories shown in a profile; without categories every profile item's
        title is shown (the profile of models saved before ``profile_categories``)."""
        c = self.config
        if c.profile_categories:
            return c.profile_items, c.profile_categories
        return None, 0

    def _require(self, value: Any) -> Any:
        if value is None:
            raise NotFittedError("ctr is not fitted: call fit() or load() first")
        return value

    def _pair_ids(self, examples: CTRExamples) -> list[list[int]]:
        catalog: CTRCatalog = self._require(self.catalog)
        pairs: PairEncoder = self._require(self.pairs)
        n_items, n_users = len(catalog.item_map), len(catalog.user_map)
        if len(examples) and (examples.items.min() < 0 or examples.items.max() >= n_items):
            bad = examples.items[(examples.items < 0) | (examples.items >= n_items)][0]
            raise DataError(f"item index {int(bad)} is outside the catalog (0..{n_items - 1})")
        if len(examples) and (examples.users.min() < -1 or examples.users.max() >= n_users):
            bad = examples.users[(examples.users < -1) | (examples.users >= n_users)][0]
            raise DataError(f"user index {int(bad)} is outside 0..{n_users - 1} (or -1)")
        titles, categories = self._profile_shape()
        profiles = [
            catalog.profile(int(examples.users[j]), examples.profile_of(j), titles, categories)
            for j in range(len(examples))
        ]
        return pairs.pairs(profiles, examples.items)

    def _vectors(self, pair_ids: list[list[int]], show: bool, desc: str) -> np.ndarray:
        network: CrossEncoderCTR = self._require(self.network)
        network.eval()
        dim = network.encoder.encoder.dim
        if not pair_ids:
            return np.empty((0, dim), dtype=np.float32)
        return run_batched(
            network.encoder,
            pair_ids,
            network.encoder.encoder.pad,
            self.config.score_batch_size,
            show_progress=show,
            desc=desc,
        )

    def _logits(self, pair_ids: list[list[int]], show_progress: bool = False) -> np.ndarray:
        network: CrossEncoderCTR = self._require(self.network)
        if not pair_ids:
            return np.empty(0, dtype=np.float32)
        was_training = network.training
        network.eval()
        try:
            return run_batched(
                network,
                pair_ids,
                network.encoder.encoder.pad,
                self.config.score_batch_size,
                show_progress=show_progress,
                desc="scoring pairs",
            )
        finally:
            network.train(was_training)

    # -- prediction -----------------------------------------------------------------------
    def predict(self, examples: CTRExamples, show_progress: bool = False) -> np.ndarray:
        """``P(click | profile, item)`` per example (for ``mse``: the rating scaled to
        ``[0, 1]``), float32 ``(len(examples),)``.

        Pairs of similar token length are batched together and run under
        ``torch.inference_mode``.
        """
        logits = self._logits(self._pair_ids(examples), show_progress)
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)

    def score_candidates(
        self,
        users: np.ndarray,
        histories: Sequence[np.ndarray],
        candidates: Sequence[np.ndarray],
        show_progress: bool = False,
    ) -> list[np.ndarray]:
        """Probabilities of each user's candidate items after their known history.

        Args:
            users: User indices (``-1`` for a user without attributes in the catalog).
            histories: Per user, the time-ordered known items; the last ``profile_items``
                (other than the candidate itself) form the profile, and the last
                ``profile_window`` its categories when ``profile_categories`` is set.
            candidates: Per user, the item indices to score.
            show_progress: Show a progress bar over the pairs.

        Returns:
            Per user, float32 probabilities aligned with ``candidates``.
        """
        catalog: CTRCatalog = self._require(self.catalog)
        if not len(users) == len(histories) == len(candidates):
            raise ValueError("users, histories and candidates must have the same length")
        k = self.config.history_items
        titles, categories = self._profile_shape()
        profiles: list[str] = []
        items: list[np.ndarray] = []
        for u, history, cands in zip(users, histories, candidates, strict=True):
            cands = np.asarray(cands, dtype=np.int64)
            profiles.extend(
                catalog.history_profile(int(u), history, int(c), k, titles, categories)
                for c in cands
            )
            items.append(cands)
        flat = np.concatenate(items) if items else np.zeros(0, dtype=np.int64)
        pairs: PairEncoder = self._require(self.pairs)
        if len(flat) and (flat.min() < 0 or flat.max() >= len(catalog.item_map)):
            raise DataError(f"a candidate item index is outside 0..{len(catalog.item_map) - 1}")
        logits = self._logits(pairs.pairs(profiles, flat), show_progress)
        probs = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        bounds = np.cumsum([0, *(len(c) for c in items)])
        return [probs[bounds[j] : bounds[j + 1]] for j in range(len(items))]

    def evaluate(self, examples: CTRExamples, show_progress: bool = False) -> dict[str, float]:
        """AUC, GAUC, LogLoss (and RMSE for ``mse``) of the predictions on ``examples``;
        see :func:`ctr_metrics`."""
        probs = self.predict(examples, show_progress)
        rating_range = self.rating_range if self.config.objective == "mse" else None
        return ctr_metrics(examples, probs, rating_range)

    def trainable_parameters(self) -> int:
        """Number of parameters that training updates (head plus tuned encoder weights)."""
        network: CrossEncoderCTR = self._require(self.network)
        return sum(p.numel() for p in network.parameters() if p.requires_grad)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the config, the catalog texts and id maps, the head and the tuned encoder
        weights (not the base language model) into directory ``path``."""
        network: CrossEncoderCTR = self._require(self.network)
        catalog: CTRCatalog = self._require(self.catalog)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        catalog.save(path)
        torch.save(network.head.state_dict(), path / _HEAD_FILE)
        torch.save(network.encoder.trainable_state_dict(), path / _ENCODER_FILE)
        meta = {
            "model": self.name,
            "format": _FORMAT,
            "config": self.config.model_dump(mode="json"),
            "rating_range": list(self.rating_range) if self.rating_range else None,
        }
        tmp = path / f"{_META_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(path / _META_FILE)  # written last: its presence marks a complete save

    @classmethod
    def load(cls, path: str | Path, *, options: RunOptions | None = None) -> CTRModel:
        """Load a model written by :meth:`save`; the base language model is loaded by name.

        Raises:
            ModelFileError: The directory holds no complete CTR model, or its weights do not
                fit its config.
        """
        path = Path(path)
        meta_file = path / _META_FILE
        if not meta_file.exists():
            raise ModelFileError(f"{path} holds no saved CTR model ({_META_FILE} is missing)")
        meta = json.loads(meta_file.read_text())
        if meta.get("model") != cls.name or meta.get("format") != _FORMAT:
            raise ModelFileError(
                f"{path} holds a {meta.get('model')!r} model of format {meta.get('format')!r}, "
                f"not a {cls.name!r} model of format {_FORMAT}"
            )
        model = cls(meta["config"], options=options)
        bounds = meta.get("rating_range")
        model.rating_range = (float(bounds[0]), float(bounds[1])) if bounds else None
        model.catalog = CTRCatalog.load(path)
        network, pairs = model._build(model.catalog)
        device = model.options.device
        for file in (_HEAD_FILE, _ENCODER_FILE):
            if not (path / file).exists():
                raise ModelFileError(f"{path} lacks {file}")
        head_state = torch.load(path / _HEAD_FILE, map_location=device, weights_only=True)
        try:
            network.head.load_state_dict(head_state)
        except RuntimeError as exc:
            raise ModelFileError(f"{path / _HEAD_FILE} does not match the config: {exc}") from exc
        encoder_state = torch.load(path / _ENCODER_FILE, map_location=device, weights_only=True)
        network.encoder.load_trainable_state_dict(encoder_state)
        network.eval()
        model.network, model.pairs = network, pairs
        return model
