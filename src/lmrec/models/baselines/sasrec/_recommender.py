"""SASRec as a recommender: next-item training with full-softmax cross-entropy, inductive scoring.

Training (Kang & McAuley 2018, with the cross-entropy loss of Klenitskiy & Vasilev 2023 and
Petrov & Macdonald 2023): every user contributes one sequence, the last ``max_len + 1`` tokens
of ``[start] + history``; at every slot the model predicts the next item with a softmax over
the whole catalog (logits = hidden state @ item embeddings). Padding slots carry no loss.

Scoring is inductive: a history is encoded as it is given (last ``max_len`` items), and the
hidden state of its last slot scores every item, so a user unseen in training is served from
a few items without retraining. An empty history is the start token alone, whose state was
trained to predict users' first items, a learned cold-start prior.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmrec.data.schema import InteractionData
from lmrec.errors import DataError, ModelFileError
from lmrec.models.base import BaseRecommender, FitReport
from lmrec.models.baselines._config_build import build_config
from lmrec.models.baselines._validation import quick_ndcg_at_k
from lmrec.models.baselines.sasrec._config import SASRecConfig
from lmrec.models.baselines.sasrec._init import cooccurrence_embeddings
from lmrec.models.baselines.sasrec._model import PAD, SASRecModule
from lmrec.models.dot_top import FAST_TOP_MIN_ITEMS, DotTopTable
from lmrec.training.config import RunOptions
from lmrec.training.trainer import (
    CheckpointValue,
    Trainer,
    rank_and_world,
    seed_everything,
    shard_indices,
)

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

_STATE_FILE = "sasrec.pt"
_IGNORE = -100  # target of padding slots, skipped by the loss


def encode_histories(histories: Sequence[np.ndarray], max_len: int, start_token: int) -> np.ndarray:
    """Left-padded token rows for scoring, as wide as the longest encoded history.

    A history of at least ``max_len`` items keeps its last ``max_len``; a shorter one gets the
    start token in front, exactly as the training sequences do.
    """
    rows = []
    for h in histories:
        h = np.asarray(h, dtype=np.int64)
        if len(h) >= max_len:
            rows.append(h[len(h) - max_len :] + 1)
        else:
            rows.append(np.concatenate([[start_token], h + 1]))
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), PAD, dtype=np.int64)
    for j, r in enumerate(rows):
        tokens[j, width - len(r) :] = r
    return tokens


def augmented(sequences: Sequence[np.ndarray], how: str, seed: int) -> list[np.ndarray]:
    """``sequences`` followed by a reversed (``"reverse"``) or shuffled (``"shuffle"``) copy
    of each that has at least two items; ``"none"``: the sequences alone."""
    out = [np.asarray(s) for s in sequences]
    if how == "none":
        return out
    if how not in ("reverse", "shuffle"):
        raise ValueError(f"unknown augmentation {how!r}")
    rng = np.random.default_rng(seed)
    extra = [s[::-1] if how == "reverse" else rng.permutation(s) for s in out if len(s) > 1]
    return out + extra


def _same_target_groups(last_targets: np.ndarray) -> list[np.ndarray]:
    """Per row, the rows (itself included) whose last target is the same."""
    order = np.argsort(last_targets, kind="stable")
    bounds = np.flatnonzero(np.diff(last_targets[order])) + 1
    groups: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(last_targets)
    for group in np.split(order, bounds):
        for row in group:
            groups[row] = group
    return groups


def training_sequences(
    sequences: Sequence[np.ndarray], max_len: int, start_token: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-item targets ``(n_users_with_items, max_len)``, right-aligned.

    Each row is the last ``max_len + 1`` tokens of ``[start] + sequence``: inputs are all but
    the last, targets (item indices) all but the first; padding has target ``-100``.
    """
    kept = [np.asarray(s, dtype=np.int64) for s in sequences if len(s)]
    inputs = np.full((len(kept), max_len), PAD, dtype=np.int64)
    targets = np.full((len(kept), max_len), _IGNORE, dtype=np.int64)
    for j, seq in enumerate(kept):
        tokens = np.concatenate([[start_token], seq + 1])[-(max_len + 1) :]
        n = len(tokens) - 1
        inputs[j, max_len - n :] = tokens[:-1]
        targets[j, max_len - n :] = tokens[1:] - 1
    return inputs, targets


class SequenceTask:
    """The :class:`lmrec.training.TrainingTask` of SASRec: shuffled user sequences.

    Args:
        network: The SASRec module.
        inputs: Token rows from :func:`training_sequences`.
        targets: Matching target rows.
        batch_size: Sequences per batch (per process under DDP).
        label_smoothing: Label smoothing of the cross-entropy loss.
        contrastive: ``"none"``, ``"dropout"`` or ``"same_target"``: the contrastive
            regulariser of :class:`SASRecConfig` (``contrastive``).
        contrastive_weight: Its weight in the loss.
        contrastive_temperature: Its softmax temperature.
        future_window: Next items predicted at each slot (:class:`SASRecConfig`).
        future_decay: Weight ratio of successive next items' losses.
    """

    def __init__(
        self,
        network: nn.Module,
        inputs: np.ndarray,
        targets: np.ndarray,
        batch_size: int,
        label_smoothing: float = 0.0,
        contrastive: str = "none",
        contrastive_weight: float = 0.0,
        contrastive_temperature: float = 1.0,
        future_window: int = 1,
        future_decay: float = 0.5,
    ) -> None:
        self.module: nn.Module = network
        self.future_window = future_window
        self.future_decay = future_decay
        self.label_smoothing = label_smoothing
        self.network = network  # unwrapped, for the output embeddings
        self.inputs = torch.from_numpy(inputs)
        self.targets = torch.from_numpy(targets)
        self.batch_size = batch_size
        if contrastive not in ("none", "dropout", "same_target"):
            raise ValueError(f"unknown contrastive mode {contrastive!r}")
        self.contrastive = contrastive if contrastive_weight > 0 else "none"
        self.contrastive_weight = contrastive_weight
        self.contrastive_temperature = contrastive_temperature
        self.last_targets = self.targets[:, -1]  # right-aligned rows: the last slot is real
        self.partners: list[np.ndarray] | None = None
        if self.contrastive == "same_target":
            self.partners = _same_target_groups(self.last_targets.numpy())

    def _shard_size(self) -> int:
        _, world = rank_and_world()
        return -(-len(self.inputs) // world)

    def num_batches(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled ``(inputs, targets)`` batches, with the same-target partners' inputs as a
        third tensor under ``contrastive = "same_target"``."""
        n = len(self.inputs)
        order = torch.randperm(n, generator=generator)
        rank, world = rank_and_world()
        if world > 1:
            order = order[torch.from_numpy(shard_indices(n, rank, world))]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            inputs, targets = self.inputs[rows], self.targets[rows]
            # Left padding: the columns before the longest sequence of the batch are padding.
            width = int((inputs != PAD).sum(dim=1).max())
            if self.partners is None:
                yield inputs[:, -width:], targets[:, -width:]
                continue
            partner_inputs = self.inputs[self._pick_partners(rows, generator)]
            partner_width = int((partner_inputs != PAD).sum(dim=1).max())
            yield inputs[:, -width:], targets[:, -width:], partner_inputs[:, -partner_width:]

    def _pick_partners(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per row, another row with the same last target (itself where there is none)."""
        assert self.partners is not None
        picks = rows.clone()
        draws = torch.rand(len(rows), generator=generator).numpy()
        for j, row in enumerate(rows.tolist()):
            group = self.partners[row]
            if len(group) > 1:
                choice = int(group[int(draws[j] * (len(group) - 1))])
                picks[j] = choice if choice != row else int(group[-1])
        return picks

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        inputs, targets, *partner = batch
        hidden = self.module(inputs)
        real = targets != _IGNORE
        assert isinstance(self.network, SASRecModule)
        logits = self.network.logits(hidden[real])
        loss = F.cross_entropy(logits, targets[real], label_smoothing=self.label_smoothing)
        if self.future_window > 1:
            loss = self.future_loss(loss, logits, targets, real)
        if self.contrastive == "none":
            return loss
        # The second view: the same rows under other dropout masks, or same-target partners.
        view = self.module(partner[0] if partner else inputs)[:, -1]
        return loss + self.contrastive_weight * self.contrastive_loss(
            hidden[:, -1], view, targets[:, -1]
        )

    def future_loss(
        self,
        next_loss: torch.Tensor,
        logits: torch.Tensor,
        targets: torch.Tensor,
        real: torch.Tensor,
    ) -> torch.Tensor:
        """The next-item loss averaged with the losses of the 2nd..w-th next items.

        ``logits`` are the rows of the real slots of ``targets`` (right-aligned rows, so the
        ``j``-th next item of slot ``t`` is the target of slot ``t + j - 1``).
        """
        log_probs = F.log_softmax(logits, dim=-1)
        total, weights = next_loss, 1.0
        for j in range(2, self.future_window + 1):
            if j - 1 >= targets.shape[1]:
                break
            later = torch.full_like(targets, _IGNORE)
            later[:, : -(j - 1)] = targets[:, j - 1 :]
            later = later[real]
            valid = later != _IGNORE
            if not bool(valid.any()):
                break
            weight = self.future_decay ** (j - 1)
            picked = log_probs[valid].gather(1, later[valid][:, None])
            total = total - weight * picked.mean()
            weights += weight
        return total / weights

    def contrastive_loss(
        self, first: torch.Tensor, second: torch.Tensor, last_targets: torch.Tensor
    ) -> torch.Tensor:
        """Symmetric InfoNCE between two views ``(batch, dim)`` of the batch's sequences.

        Row ``j`` of ``first`` must match row ``j`` of ``second``; the other rows are the
        negatives, except rows with the same last target (false negatives, masked out).
        """
        scores = first @ second.T / self.contrastive_temperature
        same = last_targets[:, None] == last_targets[None, :]
        eye = torch.eye(len(first), dtype=torch.bool, device=first.device)
        scores = scores.masked_fill(same & ~eye, float("-inf"))
        labels = torch.arange(len(first), device=first.device)
        return 0.5 * (F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels))


class SASRecRecommender(BaseRecommender):
    """Self-attentive sequential recommender trained with full-softmax cross-entropy.

    ``fit`` stops early on the NDCG@10 of ``valid`` (when given) and keeps the best epoch.
    With ``config.members > 1`` it trains that many networks one after the other (seeds
    ``trainer.seed + j``, each stopped early on its own, checkpoints and logs under
    ``member-<j>/`` of the work directory) and scores with their mean log-softmax.
    The ``work_dir`` of the fit options receives checkpoints (``checkpoints/``) and the
    per-epoch log (``train_log.jsonl``) unless ``options`` names other places.

    Args:
        config: A :class:`SASRecConfig`, a dict of its fields, or ``None`` for defaults.
        options: Runtime options of the trainer (device, checkpoint/log files,
            TensorBoard).
        **overrides: Config fields that replace those of ``config``.
    """

    name: ClassVar[str] = "sasrec"

    def __init__(
        self,
        config: SASRecConfig | Mapping[str, Any] | None = None,
        *,
        options: RunOptions | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = build_config(SASRecConfig, config, **overrides)
        self.options = options if options is not None else RunOptions()
        self.networks: list[SASRecModule] = []
        """The fitted members (one unless ``config.members`` asks for more)."""
        self.fast_top_min_items = FAST_TOP_MIN_ITEMS
        """Catalog size from which :meth:`top_items` skips the full sort."""
        self._table_cache: tuple[tuple[int, int, int], DotTopTable] | None = None

    def _build_network(self, n_items: int) -> SASRecModule:
        c = self.config
        return SASRecModule(
            n_items=n_items,
            dim=c.dim,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            ffn_dim=c.dim * c.ffn_multiplier,
            max_len=c.max_len,
            dropout=c.dropout,
            norm_first=c.norm_first,
            cosine=c.cosine,
            temperature=c.temperature,
            tied=c.tie_output,
            mixture=c.mixture,
        ).to(self.options.device)

    @property
    def network(self) -> SASRecModule | None:
        """The first (with ``members = 1`` the only) fitted network, ``None`` before fitting."""
        return self.networks[0] if self.networks else None

    @network.setter
    def network(self, value: SASRecModule | None) -> None:
        """Make ``value`` the only network (``None``: none, unfitted)."""
        self.networks = [] if value is None else [value]

    def _run_options(self, member: int) -> RunOptions:
        """Checkpoint and log places of one member: the work directory itself for a single
        network, its ``member-<j>`` subdirectory when there are several."""
        fit = self.fit_options
        if self.config.members == 1:
            return self.options.with_work_dir(fit.work_dir, fit.resume)
        options = self.options.with_work_dir(
            None if fit.work_dir is None else Path(fit.work_dir) / f"member-{member}", fit.resume
        )
        if self.options.checkpoint_dir is not None:
            options.checkpoint_dir = Path(self.options.checkpoint_dir) / f"member-{member}"
        if self.options.log_path is not None:
            log = Path(self.options.log_path)
            options.log_path = log.with_name(f"{log.stem}.member-{member}{log.suffix}")
        return options

    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport:
        self.networks = []
        sequences = self._require(self.histories)  # train.sequences(), read once by fit()
        reports = [self._fit_member(j, train, sequences, valid) for j in range(self.config.members)]
        if len(reports) == 1:
            return reports[0]
        return self._ensemble_report(reports, valid)

    def _fit_member(
        self,
        member: int,
        train: InteractionData,
        sequences: list[np.ndarray],
        valid: EvalTask | None,
    ) -> FitReport:
        """Train member ``member`` (seed ``trainer.seed + member``) and append it to
        :attr:`networks`; early stopping reads this member's own validation score."""
        cfg = self.config
        seed = cfg.trainer.seed + member
        seed_everything(seed)
        network = self._build_network(train.n_items)
        if cfg.init_embeddings == "cooccurrence":
            vectors, has = cooccurrence_embeddings(sequences, train.n_items, cfg.dim, 0.02, seed)
            with torch.no_grad():
                rows = network.item_embedding.weight[1 : train.n_items + 1]
                rows[torch.from_numpy(has)] = torch.from_numpy(vectors[has]).to(rows)
        training_rows = augmented(sequences, cfg.augment, seed)
        inputs, targets = training_sequences(training_rows, cfg.max_len, network.start_token)
        if len(inputs) == 0:
            raise DataError("SASRec needs at least one training interaction, got none")
        task = SequenceTask(
            network,
            inputs,
            targets,
            cfg.trainer.batch_size,
            cfg.label_smoothing,
            cfg.contrastive,
            cfg.contrastive_weight,
            cfg.contrastive_temperature,
            cfg.future_window,
            cfg.future_decay,
        )
        trainer_config = cfg.trainer.model_copy(update={"seed": seed})
        if self.fit_options.show_progress and not trainer_config.show_progress:
            trainer_config = trainer_config.model_copy(update={"show_progress": True})
        validate = None
        if valid is not None and len(valid) > 0:
            task_valid = valid

            def member_scores(users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
                return self._scores([network], histories)

            def validate() -> dict[str, float]:
                return {"ndcg@10": quick_ndcg_at_k(member_scores, task_valid, k=10)}

        report = Trainer(trainer_config, self._run_options(member)).fit(
            task, validate, checkpoint_key=self._checkpoint_key(train)
        )
        self.networks.append(network)
        return report

    def _ensemble_report(self, reports: list[FitReport], valid: EvalTask | None) -> FitReport:
        """One report for the members' fits, run one after the other.

        Seconds and epochs add up; ``best_epoch`` and ``seconds_to_best`` count every
        earlier member whole and the last one up to its best epoch; the history numbers the
        epochs on across members (each record also names its ``member`` and
        ``member_epoch``); ``best_valid`` is the whole ensemble's validation NDCG@10.
        """
        history: list[dict[str, float]] = []
        epochs, seconds = 0, 0.0
        for j, report in enumerate(reports):
            for record in report.history:
                local = int(record.get("epoch", 0))
                history.append(
                    {**record, "epoch": epochs + local, "member": j, "member_epoch": local}
                )
            if j < len(reports) - 1:
                epochs += report.epochs
                seconds += report.train_seconds
        last = reports[-1]
        best_valid: dict[str, float] = {}
        if valid is not None and len(valid) > 0:
            best_valid = {"ndcg@10": quick_ndcg_at_k(self.score, valid, k=10)}
        return FitReport(
            train_seconds=seconds + last.train_seconds,
            epochs=epochs + last.epochs,
            best_epoch=None if last.best_epoch is None else epochs + last.best_epoch,
            seconds_to_best=None
            if last.seconds_to_best is None
            else seconds + last.seconds_to_best,
            best_valid=best_valid,
            history=history,
        )

    def _checkpoint_key(self, train: InteractionData) -> dict[str, CheckpointValue]:
        # A checkpoint resumes only for the same architecture and the same training data.
        model = self.config.model_dump(mode="json", exclude={"trainer", "score_batch_size"})
        return {"model": json.dumps(model, sort_keys=True), "train_data": train.digest()}

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item after each history, shape ``(len(histories), n_items)``.

        ``users`` is ignored: the model is inductive and reads only the histories (their
        last ``max_len`` items). An empty history scores from the learned start state.
        """
        self._require(self.network)
        return self._scores(self.networks, histories)

    def _scores(
        self, networks: Sequence[SASRecModule], histories: Sequence[np.ndarray]
    ) -> np.ndarray:
        """One network's logits, or several networks' mean log-softmax scores."""
        out = np.empty((len(histories), networks[0].n_items), dtype=np.float32)
        for start, hidden in self._last_states(networks, histories):
            rows = out[start : start + len(hidden[0])]
            if len(networks) == 1:
                rows[:] = networks[0].logits(hidden[0]).float().cpu().numpy()
                continue
            total = torch.zeros(rows.shape, dtype=torch.float32)
            for network, states in zip(networks, hidden, strict=True):
                total += F.log_softmax(network.logits(states).float(), dim=-1).cpu()
            rows[:] = (total / len(networks)).numpy()
        return out

    def _top_without_sort(
        self, histories: Sequence[np.ndarray], n: int, masks: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]] | None:
        network: SASRecModule = self._require(self.network)
        if len(self.networks) > 1:
            return None  # a mean of log-softmax scores is not one dot product
        table = self._top_table(network)
        if table is None or not table.usable_for(n) or network.item_embedding.weight.is_cuda:
            return None
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for start, (hidden,) in self._last_states([network], histories):
            query = F.normalize(hidden, dim=-1) if network.cosine else hidden
            out += table.top(query.float(), n, masks[start : start + len(hidden)])
        return out

    def _top_table(self, network: SASRecModule) -> DotTopTable | None:
        """The output embeddings as a :class:`DotTopTable` (cached while they are unchanged)."""
        if network.n_items < self.fast_top_min_items or network.mixture > 1:
            return None  # a mixture of softmaxes is not one dot product
        weight = network.output_table
        key = (id(network), id(weight), weight._version)
        if self._table_cache is None or self._table_cache[0] != key:
            with torch.no_grad():
                items = network.item_weights()
                items = F.normalize(items, dim=-1) if network.cosine else items
                divisor = network.temperature if network.cosine else 1.0
                self._table_cache = (key, DotTopTable(items.cpu(), divisor))
        return self._table_cache[1]

    def _last_states(
        self, networks: Sequence[SASRecModule], histories: Sequence[np.ndarray]
    ) -> Iterator[tuple[int, list[torch.Tensor]]]:
        """Per chunk of histories, each network's hidden states of the last slot (eval mode,
        no grad)."""
        if len(histories) == 0:
            return
        switched = [n for n in networks if n.training]
        for network in switched:  # eval() walks every submodule: skip it when serving
            network.eval()
        device = networks[0].item_embedding.weight.device
        step = self.config.score_batch_size
        try:
            with torch.no_grad():
                for start in range(0, len(histories), step):
                    chunk = histories[start : start + step]
                    tokens = encode_histories(chunk, self.config.max_len, networks[0].start_token)
                    batch = torch.from_numpy(tokens).to(device)
                    yield start, [n(batch, last_only=True)[:, -1] for n in networks]
        finally:
            for network in switched:
                network.train()

    @staticmethod
    def _state_file(member: int) -> str:
        return _STATE_FILE if member == 0 else f"sasrec-member{member}.pt"

    def _save_state(self, path: Path) -> None:
        self._require(self.network)
        for j, network in enumerate(self.networks):
            torch.save(network.state_dict(), path / self._state_file(j))

    def _load_state(self, path: Path) -> None:
        networks = []
        for j in range(self.config.members):
            file = path / self._state_file(j)
            if not file.exists():
                raise ModelFileError(f"{path} lacks {file.name}")
            network = self._build_network(self.n_items)
            state = torch.load(file, map_location=self.options.device, weights_only=True)
            try:
                network.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelFileError(f"{file} does not match the saved config: {exc}") from exc
            network.eval()
            networks.append(network)
        self.networks = networks
