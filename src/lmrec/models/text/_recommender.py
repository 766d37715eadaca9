"""The text sequential recommender: items from their text, users from their history.

Item vector = adaptor(PLM(item text)) [+ item-id embedding with dropout]; user vector = the
last hidden state of SASRec blocks run over the history's item vectors; score = cosine (or
dot) / temperature; loss = softmax cross-entropy over the whole catalog at every slot of
every training sequence. There are no user embeddings, so any history (also one that arrives
after training) is served at once, and an item's vector needs only its text.

With a frozen encoder the language-model vectors are computed once (and cached on disk);
otherwise each batch re-encodes its target items with gradients, every other item comes
from vectors refreshed at the start of each epoch (in-batch plus cached negatives).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from lmrec.data.schema import InteractionData
from lmrec.errors import ConfigError, DataError, ModelFileError
from lmrec.models.base import FitReport
from lmrec.models.baselines._config_build import build_config
from lmrec.models.baselines._validation import quick_ndcg_at_k
from lmrec.models.baselines.sasrec._recommender import encode_histories, training_sequences
from lmrec.models.dot_top import FAST_TOP_MIN_ITEMS, DotTopTable
from lmrec.models.text._base import TextRecommenderBase
from lmrec.models.text._config import TextSeqConfig
from lmrec.models.text._content import (
    CONTENT_GRID,
    ContentPrior,
    blend,
    boost_new_items,
    choose_weight,
    validation_ndcg,
)
from lmrec.models.text._model import TextSeqModule, TextSeqNetwork
from lmrec.models.text._training import ItemInputs, TextSequenceTask
from lmrec.text.encoder import ItemTextEncoder
from lmrec.text.tuning import TunableEncoder
from lmrec.training.config import RunOptions, TrainerConfig
from lmrec.training.trainer import CheckpointValue, seed_everything, trainer_for

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask


def _stage_options(options: RunOptions, stage: str) -> RunOptions:
    """The runtime options of a later training stage: its own checkpoint folder and log."""
    opts = RunOptions(**vars(options))
    if opts.checkpoint_dir is not None:
        opts.checkpoint_dir = opts.checkpoint_dir / stage
    if opts.log_path is not None:
        opts.log_path = opts.log_path.with_name(f"{opts.log_path.stem}-{stage}.jsonl")
    if opts.tensorboard_dir is not None:
        opts.tensorboard_dir = opts.tensorboard_dir / stage
    return opts


def _best(report: FitReport, monitor: str) -> float:
    return report.best_valid.get(monitor, -float("inf"))


def _merge_reports(first: FitReport, second: FitReport, monitor: str) -> FitReport:
    """One report for two stages: epochs and seconds add up, the better stage's best counts."""
    history = [dict(r, stage=1.0) for r in first.history]
    history += [
        dict(r, stage=2.0, epoch=r.get("epoch", 0.0) + first.epochs) for r in second.history
    ]
    later_wins = _best(second, monitor) >= _best(first, monitor) and second.best_epoch is not None
    best = second if later_wins else first
    return FitReport(
        train_seconds=first.train_seconds + second.train_seconds,
        epochs=first.epochs + second.epochs,
        best_epoch=(first.epochs + second.best_epoch)
        if later_wins and second.best_epoch is not None
        else first.best_epoch,
        seconds_to_best=(first.train_seconds + (second.seconds_to_best or 0.0))
        if later_wins
        else first.seconds_to_best,
        best_valid=dict(best.best_valid),
        history=history,
    )


_NETWORK_FILE = "text_seq.pt"
_ENCODER_FILE = "encoder_tuned.pt"
_CONTENT_FILE = "content_weight.json"
_TRAINED_FILE = "trained_items.npy"


class TextSeqRecommender(TextRecommenderBase):
    """Next-item recommender over language-model item vectors; see the module docstring.

    Args:
        config: A :class:`TextSeqConfig`, a dict of its fields, or ``None`` for defaults.
        options: Runtime options of the trainer (device, checkpoint/log files).
        **overrides: Config fields that replace those of ``config``.
    """

    name: ClassVar[str] = "text_seq"

    def __init__(
        self,
        config: TextSeqConfig | Mapping[str, Any] | None = None,
        *,
        options: RunOptions | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = build_config(TextSeqConfig, config, **overrides)
        self.options = options if options is not None else RunOptions()
        self.module: TextSeqModule | None = None
        self.tuned: TunableEncoder | None = None
        self._tuned_state: dict[str, torch.Tensor] | None = None
        self.fast_top_min_items = FAST_TOP_MIN_ITEMS
        """Catalog size from which :meth:`top_items` skips the full sort."""
        self._table_cache: tuple[tuple[object, ...], torch.Tensor] | None = None
        self._dot_cache: tuple[torch.Tensor, DotTopTable] | None = None
        self.content = ContentPrior()
        self.fitted_content_weight: float | None = None
        """The weight ``content_weight = "auto"`` chose (``None``: not chosen yet)."""
        self.trained_items: np.ndarray | None = None
        """``(n_items,)`` bool: the items with a training interaction (``None``: unknown, a
        run saved before this was kept; every item it had then counts as trained)."""

    # ------------------------------------------------------------------------- building
    def _build_module(self, n_items: int, text_dim: int) -> TextSeqModule:
        c = self.config
        return TextSeqModule(
            n_items=n_items,
            text_dim=text_dim,
            dim=c.dim,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            ffn_dim=c.dim * c.ffn_multiplier,
            max_len=c.max_len,
            dropout=c.dropout,
            adaptor_dropout=c.adaptor_dropout,
            id_fusion=c.id_fusion,
            id_dropout=c.id_dropout,
            cosine=c.cosine,
            temperature=c.temperature,
        ).to(self.options.device)

    def _build_tuned(self) -> TunableEncoder:
        encoder = ItemTextEncoder(self.config.encoder, device=self.options.device)
        return TunableEncoder(encoder, self.config.tuning)

    def _run_options(self) -> RunOptions:
        fit = self.fit_options
        return self.options.with_work_dir(fit.work_dir, fit.resume)

    # ------------------------------------------------------------------------- training
    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport:
        cfg = self.config
        self._check_private()
        texts = self._texts_for(train)
        seed_everything(cfg.trainer.seed)
        progress = self.fit_options.show_progress
        trains_encoder = cfg.tuning.strategy != "frozen"
        item_inputs: ItemInputs | None = None
        if trains_encoder:
            start = time.perf_counter()
            tuned = self._build_tuned()
            self.tuned = tuned
            item_inputs = ItemInputs(tuned, texts, show_progress=progress)
            text_dim = tuned.encoder.dim
            self.encode_seconds += time.perf_counter() - start
        else:
            vectors = self.frozen_vectors(texts, show_progress=progress)
            text_dim = vectors.shape[1]
        seed_everything(cfg.trainer.seed)
        module = self._build_module(train.n_items, text_dim)
        if not trains_encoder:
            module.text_vectors.copy_(torch.from_numpy(vectors))
        if cfg.init_from is not None:
            self._initialise_from(module, Path(cfg.init_from))
        self.module = module
        inputs, targets = training_sequences(train.sequences(), cfg.max_len, module.start_token)
        if len(inputs) == 0:
            raise DataError("text_seq needs at least one training interaction, got none")
        key = self._checkpoint_key(train, texts)
        run_options = self._run_options()
        trained = train.item_counts() > 0  # the softmax's candidates (see TextSequenceTask)
        warm_start = self.tuned is not None and cfg.encoder_trainer is not None
        if warm_start:
            assert item_inputs is not None and cfg.encoder_trainer is not None
            # Stage 1: the rest of the model learns on the untouched encoder's vectors.
            stage1 = TextSequenceTask(
                TextSeqNetwork(module, None),
                inputs,
                targets,
                cfg.trainer.batch_size,
                1,
                candidates=trained,
            )
            start = time.perf_counter()
            module.text_vectors.copy_(item_inputs.encode_all())
            self.encode_seconds += time.perf_counter() - start
            if cfg.init_from is None:
                first = self._train(stage1, cfg.trainer, run_options, valid, key)
            else:  # stage 1 was a previous run: only measure where it starts
                first = self._starting_point(valid, cfg.encoder_trainer.monitor)
            before = {k: v.detach().clone() for k, v in module.state_dict().items()}
            encoder_before = {k: v.clone() for k, v in self._tuned().trainable_state_dict().items()}
            # Stage 2: encoder and model together, from there; files go to a subfolder.
            task = TextSequenceTask(
                TextSeqNetwork(module, self.tuned),
                inputs,
                targets,
                cfg.encoder_trainer.batch_size,
                cfg.fresh_items,
                item_inputs,
                trained,
            )
            task.stale = False  # the cache holds the untouched encoder's vectors
            second = self._train(
                task, cfg.encoder_trainer, _stage_options(run_options, "encoder"), valid, key
            )
            report = _merge_reports(first, second, cfg.encoder_trainer.monitor)
            if _best(first, cfg.trainer.monitor) > _best(second, cfg.encoder_trainer.monitor):
                # Tuning the encoder did not beat the frozen stage on validation: keep stage 1.
                module.load_state_dict(before)
                self._tuned().load_trainable_state_dict(encoder_before)
        else:
            task = TextSequenceTask(
                TextSeqNetwork(module, self.tuned),
                inputs,
                targets,
                cfg.trainer.batch_size,
                cfg.fresh_items,
                item_inputs,
                trained,
            )
            report = self._train(task, cfg.trainer, run_options, valid, key)
        module.eval()
        # An item without a training interaction got no id signal (and was no candidate in
        # the softmax); serve it from its text alone, as id dropout trained the model to.
        self.trained_items = train.item_counts() > 0
        module.clear_id_embeddings(torch.from_numpy(~self.trained_items))
        self.encode_seconds += task.encode_seconds
        report.encode_seconds = self.encode_seconds
        if cfg.content_weight == "auto":
            self.fitted_content_weight = 0.0
            if valid is not None and len(valid) > 0:
                values = self.tune_content_weight(valid)
                report.best_valid["content_weight"] = self.content_weight
                report.best_valid["ndcg@10_with_content"] = values[self.content_weight]
        return report

    def _check_private(self) -> None:
        """DP-SGD (``trainer.dp``) trains one stage with a frozen or LoRA encoder."""
        cfg = self.config
        stages = [cfg.trainer] + ([cfg.encoder_trainer] if cfg.encoder_trainer else [])
        if not any(stage.private for stage in stages):
            return
        from lmrec.privacy.dp import check_private_strategy

        check_private_strategy(cfg.tuning.strategy)
        if cfg.encoder_trainer is not None:
            raise ConfigError(
                "encoder_trainer: two-stage training does not run under DP-SGD (trainer.dp); "
                "unset encoder_trainer and put the dp table in trainer"
            )

    def _initialise_from(self, module: TextSeqModule, path: Path) -> None:
        """Copy a saved text_seq model's weights (all but its cached vectors) into ``module``."""
        file = path / _NETWORK_FILE
        if not file.exists() and (path / "model" / _NETWORK_FILE).exists():
            file = path / "model" / _NETWORK_FILE  # a run directory
        if not file.exists():
            raise ConfigError(f"init_from: {str(path)!r} holds no saved text_seq model")
        state = torch.load(file, map_location=self.options.device, weights_only=True)
        state.pop("text_vectors", None)
        own = module.state_dict()
        wrong = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        missing = [k for k in own if k != "text_vectors" and k not in state]
        if wrong or missing:
            raise ConfigError(
                f"init_from: {str(path)!r} does not match this model's architecture "
                f"(mismatched: {', '.join((wrong + missing)[:5])})"
            )
        module.load_state_dict(state, strict=False)

    def _starting_point(self, valid: EvalTask | None, monitor: str) -> FitReport:
        """A report of zero epochs holding the validation score of the current weights."""
        if valid is None or len(valid) == 0:
            return FitReport()
        module: TextSeqModule = self._require(self.module)
        module.eval()
        score = quick_ndcg_at_k(self.score, valid, k=10)
        return FitReport(best_epoch=0, best_valid={monitor: score, "ndcg@10": score})

    def _tuned(self) -> TunableEncoder:
        tuned: TunableEncoder = self._require(self.tuned)
        return tuned

    def _train(
        self,
        task: TextSequenceTask,
        config: TrainerConfig,
        options: RunOptions,
        valid: EvalTask | None,
        key: dict[str, CheckpointValue],
    ) -> FitReport:
        if self.fit_options.show_progress and not config.show_progress:
            config = config.model_copy(update={"show_progress": True})
        if task.text_network.encoder is not None:
            task.text_network.encoder.set_total_steps(config.epochs * task.num_batches())
        validate = None
        if valid is not None and len(valid) > 0:
            task_valid = valid

            def validate() -> dict[str, float]:
                if task.stale:
                    task.refresh()
                return {"ndcg@10": quick_ndcg_at_k(self.score, task_valid, k=10)}

        trainer = trainer_for(config, options, self.config.tuning.lr_scale)
        report = trainer.fit(task, validate, checkpoint_key=key)
        if task.stale:  # no validation ran after the last steps: bring the cache up to date
            task.refresh()
        return report

    def _checkpoint_key(
        self, train: InteractionData, texts: Sequence[str]
    ) -> dict[str, CheckpointValue]:
        model = self.config.model_dump(
            mode="json", exclude={"trainer", "encoder_trainer", "score_batch_size"}
        )
        text_digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        return {
            "model": json.dumps(model, sort_keys=True),
            "train_data": train.digest(),
            "item_texts": text_digest,
        }

    # ------------------------------------------------------------------------- new items
    def _item_text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        tuned = self.tuned_encoder()
        if tuned is None:
            return self.frozen_vectors(texts)
        return tuned.encode(texts)

    def _store_item_vectors(
        self, appended: np.ndarray, rows: np.ndarray, replaced: np.ndarray
    ) -> None:
        module: TextSeqModule = self._require(self.module)
        with torch.no_grad():
            if len(rows):
                module.text_vectors[torch.from_numpy(rows)] = torch.from_numpy(replaced).to(
                    module.text_vectors
                )
            module.append_items(torch.from_numpy(appended))
        trained = self.trained_items
        if trained is None:
            trained = np.ones(module.n_items - len(appended), dtype=bool)
        self.trained_items = np.concatenate([trained, np.zeros(len(appended), dtype=bool)])

    # ------------------------------------------------------------------------- scoring
    def item_vectors(self) -> np.ndarray:
        """The final item vectors ``(n_items, dim)`` the scores are computed with."""
        module: TextSeqModule = self._require(self.module)
        with torch.no_grad():
            was_training = module.training
            module.eval()
            table = module.item_table()
            module.train(was_training)
        return table.cpu().numpy()

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item after each history; ``users`` is ignored (inductive model).

        An empty history scores from the learned start state.
        """
        module: TextSeqModule = self._require(self.module)
        out = np.empty((len(histories), module.n_items), dtype=np.float32)
        for start, hidden, table in self._last_states(histories):
            out[start : start + len(hidden)] = module.logits(hidden, table).float().cpu()
        weight = self.content_weight
        if weight > 0.0 and len(histories):
            prior = self.content.scores(module.text_vectors, histories, self.config.max_len)
            out = blend(out, prior, weight)
        if self.config.new_item_boost > 0.0:
            out = boost_new_items(out, self.new_items(), self.config.new_item_boost)
        return out

    def new_items(self) -> np.ndarray:
        """``(n_items,)`` bool: the items without a training interaction (added after
        training, or held out of it), which ``new_item_boost`` lifts."""
        module: TextSeqModule = self._require(self.module)
        trained = self.trained_items
        if trained is None:
            return np.zeros(module.n_items, dtype=bool)
        return ~trained

    def set_new_item_boost(self, boost: float) -> None:
        """Set ``config.new_item_boost`` (validated; kept when the model is saved).

        Raises:
            ConfigError: ``boost`` is not a number in [0, 5].
        """
        self.config = build_config(TextSeqConfig, self.config, new_item_boost=boost)

    def _boosting(self) -> bool:
        return self.config.new_item_boost > 0.0 and bool(self.new_items().any())

    @property
    def content_weight(self) -> float:
        """The content prior's weight in :meth:`score` (``config.content_weight`` resolved)."""
        chosen = self.config.content_weight
        if chosen == "auto":
            return self.fitted_content_weight or 0.0
        return float(chosen)

    def tune_content_weight(
        self, valid: EvalTask, grid: Sequence[float] = CONTENT_GRID
    ) -> dict[float, float]:
        """Choose the content prior's weight by validation NDCG@10 and keep it.

        Sets ``config.content_weight`` to ``"auto"`` and :attr:`fitted_content_weight` to the
        best weight of ``grid``. Returns every weight's validation NDCG@10.
        """

        def validate(weight: float) -> float:
            self.fitted_content_weight = weight
            return validation_ndcg(self.score, valid)

        self.config = self.config.model_copy(update={"content_weight": "auto"})
        best, values = choose_weight(validate, grid)
        self.fitted_content_weight = best
        return values

    def _top_without_sort(
        self, histories: Sequence[np.ndarray], n: int, masks: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]] | None:
        module: TextSeqModule = self._require(self.module)
        if module.n_items < self.fast_top_min_items or module.text_vectors.is_cuda:
            return None
        if self.content_weight > 0.0 or self._boosting():  # no longer a dot product
            return None
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start, hidden, table in self._last_states(histories):
            top = self._top_table(table)
            if not top.usable_for(n):
                return None
            query = F.normalize(hidden, dim=-1) if module.cosine else hidden
            out += top.top(query.float(), n, masks[start : start + len(hidden)])
        return out

    def _top_table(self, table: torch.Tensor) -> DotTopTable:
        """``table`` (the serving item table) as a :class:`DotTopTable`, cached with it."""
        module: TextSeqModule = self._require(self.module)
        if self._dot_cache is None or self._dot_cache[0] is not table:
            items = F.normalize(table, dim=-1) if module.cosine else table
            self._dot_cache = (table, DotTopTable(items.cpu(), module.temperature))
        return self._dot_cache[1]

    def _serving_table(self) -> torch.Tensor:
        """The eval-mode item table, recomputed only when a weight or a vector changed."""
        module: TextSeqModule = self._require(self.module)
        tensors = [*module.parameters(), *module.buffers()]
        key = (id(module), module.n_items, *((id(t), t._version) for t in tensors))
        if self._table_cache is None or self._table_cache[0] != key:
            with torch.no_grad():
                self._table_cache = (key, module.item_table())
        return self._table_cache[1]

    def _last_states(
        self, histories: Sequence[np.ndarray]
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Per chunk of histories: its offset, last-slot hidden states and the item table."""
        module: TextSeqModule = self._require(self.module)
        if len(histories) == 0:
            return
        was_training = module.training
        if was_training:  # eval() walks every submodule: skip it when serving
            module.eval()
        device = module.text_vectors.device
        step = self.config.score_batch_size
        try:
            with torch.no_grad():
                table = self._serving_table()
                for start in range(0, len(histories), step):
                    chunk = histories[start : start + step]
                    tokens = encode_histories(chunk, self.config.max_len, module.start_token)
                    hidden = module(torch.from_numpy(tokens).to(device), table, last_only=True)
                    yield start, hidden[:, -1], table
        finally:
            if was_training:
                module.train()

    # ------------------------------------------------------------------------- persistence
    def _save_state(self, path: Path) -> None:
        module: TextSeqModule = self._require(self.module)
        torch.save(module.state_dict(), path / _NETWORK_FILE)
        if self.fitted_content_weight is not None:
            (path / _CONTENT_FILE).write_text(json.dumps({"weight": self.fitted_content_weight}))
        if self.trained_items is not None:
            np.save(path / _TRAINED_FILE, self.trained_items)
        if self.tuned is not None:
            torch.save(self.tuned.trainable_state_dict(), path / _ENCODER_FILE)
        elif self._tuned_state is not None:
            torch.save(self._tuned_state, path / _ENCODER_FILE)
        self._save_texts(path)

    def _load_state(self, path: Path) -> None:
        file = path / _NETWORK_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_NETWORK_FILE}")
        state = torch.load(file, map_location=self.options.device, weights_only=True)
        if "text_vectors" not in state:
            raise ModelFileError(f"{file} holds no text_vectors")
        module = self._build_module(self.n_items, state["text_vectors"].shape[1])
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelFileError(f"{file} does not match the saved config: {exc}") from exc
        module.eval()
        self.module = module
        content = path / _CONTENT_FILE
        if content.exists():
            self.fitted_content_weight = float(json.loads(content.read_text())["weight"])
        self.trained_items = self._load_trained(path / _TRAINED_FILE, module.n_items)
        self._load_texts(path)
        encoder_file = path / _ENCODER_FILE
        if self.config.tuning.strategy != "frozen":
            if not encoder_file.exists():
                raise ModelFileError(f"{path} lacks {_ENCODER_FILE} (a fine-tuned encoder)")
            # The language model itself is loaded only when new text must be encoded.
            self._tuned_state = torch.load(
                encoder_file, map_location=self.options.device, weights_only=True
            )

    @staticmethod
    def _load_trained(file: Path, n_items: int) -> np.ndarray | None:
        """The saved trained-items mask (``None`` for a run saved before it was kept)."""
        if not file.exists():
            return None
        try:
            trained = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{file} is not a readable .npy file: {exc}") from exc
        if trained.dtype != np.bool_ or trained.shape != (n_items,):
            raise ModelFileError(
                f"{file} should hold {n_items} booleans (one per item), "
                f"got {trained.dtype} of shape {trained.shape}"
            )
        return trained

    def tuned_encoder(self) -> TunableEncoder | None:
        """The fine-tuned encoder (rebuilt from the base model on first use after ``load``);
        ``None`` for a frozen encoder, whose vectors come from :meth:`text_encoder`."""
        if self.config.tuning.strategy == "frozen":
            return None
        if self.tuned is None:
            state = self._require(self._tuned_state)
            tuned = self._build_tuned()
            tuned.load_trainable_state_dict(state)
            tuned.eval()
            self.tuned = tuned
        return self.tuned
