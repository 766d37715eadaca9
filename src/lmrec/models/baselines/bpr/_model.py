"""BPR matrix factorisation (Rendle et al., UAI 2009) as an lmrec recommender.

Each training pair ``(u, i)`` is contrasted with a uniformly drawn negative item ``j``, and
the model maximises ``log sigmoid(x_ui - x_uj)`` with ``x_ui = <p_u, q_i> + b_i``. The model
is transductive: it has an embedding only for users seen in training.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from lmrec.data.schema import InteractionData
from lmrec.errors import DataError, ModelFileError, UnknownIdError
from lmrec.models.base import BaseRecommender, FitReport, Recommendation
from lmrec.models.baselines._config_build import build_config
from lmrec.models.baselines._validation import quick_ndcg_at_k
from lmrec.models.baselines.bpr._config import BPRConfig
from lmrec.models.baselines.bpr._module import BPRModule
from lmrec.models.baselines.bpr._training import BPRTrainer

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

_STATE_FILE = "bpr_state.npz"
VALID_METRIC = "valid_ndcg@10"


class BPRRecommender(BaseRecommender):
    """Bayesian personalised ranking with matrix factorisation, trained in PyTorch.

    Scoring: a user seen in training gets ``<p_u, q_i> + b_i``. A user index ``-1``, or a
    user that had no training interactions, has no trained embedding and gets a
    non-personalised fallback: the learned item biases when ``item_bias`` is on, otherwise
    the training interaction counts (popularity). :meth:`recommend` refuses such users with
    :class:`~lmrec.errors.UnknownIdError` instead of silently serving the fallback.

    Early stopping: when ``fit`` gets a validation task, NDCG@10 is measured every
    ``eval_every`` epochs (and after the last one), training stops after ``patience``
    evaluations without improvement, and the best evaluated weights are restored. The
    report's ``history`` holds ``epoch``, ``loss`` and, when evaluated, ``valid_ndcg@10``; a
    progress bar shows when the fit options ask for one.

    Args:
        config: A :class:`BPRConfig`, a dict of its fields, or ``None`` for the defaults.
        device: Runtime option, not saved: where to train and score (default CPU).
        **overrides: Config fields to override, e.g. ``factors=32``.

    Raises:
        ConfigError: When a field is unknown or out of range.
    """

    name: ClassVar[str] = "bpr"

    def __init__(
        self,
        config: BPRConfig | Mapping[str, Any] | None = None,
        *,
        device: str | torch.device = "cpu",
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = build_config(BPRConfig, config, **overrides)
        self.device = torch.device(device)
        self.module: BPRModule | None = None
        self.seen_users: np.ndarray | None = None
        self.item_popularity: np.ndarray | None = None

    # -- training --------------------------------------------------------------------------
    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport:
        cfg = self.config
        if len(train) == 0:
            raise DataError("BPR needs at least one training interaction, got none")
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(cfg.seed)
        module = BPRModule(
            train.n_users, train.n_items, cfg.factors, cfg.item_bias, cfg.init_std, generator
        ).to(self.device)
        self.module = module
        self.seen_users = np.bincount(train.users, minlength=train.n_users) > 0
        self.item_popularity = train.item_counts().astype(np.float32)
        trainer = BPRTrainer(module, train.matrix(), cfg, self.device)

        report = FitReport()
        best_state: dict[str, torch.Tensor] | None = None
        best_score = -np.inf
        stale = 0
        epochs = tqdm(
            range(1, cfg.epochs + 1), desc="bpr", disable=not self.fit_options.show_progress
        )
        for epoch in epochs:
            row: dict[str, float] = {"epoch": float(epoch), **trainer.train_epoch()}
            report.epochs = epoch
            if valid is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                ndcg = quick_ndcg_at_k(self.score, valid, k=10)
                row[VALID_METRIC] = ndcg
                if ndcg > best_score:
                    best_score, stale = ndcg, 0
                    best_state = copy.deepcopy(module.state_dict())
                    report.best_epoch = epoch
                    report.seconds_to_best = time.perf_counter() - start
                    report.best_valid = {"ndcg@10": ndcg}  # unprefixed, as the Trainer reports it
                else:
                    stale += 1
            report.history.append(row)
            epochs.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
            if cfg.patience is not None and stale >= cfg.patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        report.train_seconds = time.perf_counter() - start
        return report

    # -- scoring ---------------------------------------------------------------------------
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item, shape ``(len(users), n_items)``, float32.

        Histories are not used (the model is transductive); users with index ``-1`` or
        without training interactions get the fallback described in the class docstring.
        """
        module: BPRModule = self._require(self.module)
        seen: np.ndarray = self._require(self.seen_users)
        users = np.asarray(users, dtype=np.int64)
        if len(users) != len(histories):
            raise ValueError(f"got {len(users)} users but {len(histories)} histories")
        if np.any(users >= len(seen)) or np.any(users < -1):
            bad = users[(users >= len(seen)) | (users < -1)][0]
            raise ValueError(f"user index {int(bad)} is outside 0..{len(seen) - 1} and not -1")
        known = users >= 0
        known[known] = seen[users[known]]
        out = np.empty((len(users), module.item_factors.shape[0]), dtype=np.float32)
        if known.any():
            with torch.no_grad():
                idx = torch.from_numpy(users[known]).to(self.device)
                out[known] = module(idx).float().cpu().numpy()
        if not known.all():
            out[~known] = self._fallback_scores()
        return out

    def _fallback_scores(self) -> np.ndarray:
        module: BPRModule = self._require(self.module)
        if module.item_bias is not None:
            bias: np.ndarray = module.item_bias.detach().float().cpu().numpy()
            return bias
        popularity: np.ndarray = self._require(self.item_popularity)
        return popularity

    def recommend(
        self, user_id: str, k: int = 10, exclude_seen: bool = True
    ) -> list[Recommendation]:
        """Top ``k`` items for a user seen in training.

        Raises:
            UnknownIdError: When the user is not in the id map or had no training
                interactions (the model has no embedding for them).
        """
        seen: np.ndarray = self._require(self.seen_users)
        index = self._require(self.user_map).index(user_id)
        if not seen[index]:
            raise UnknownIdError("user", user_id)
        return super().recommend(user_id, k=k, exclude_seen=exclude_seen)

    # -- persistence -----------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        module: BPRModule = self._require(self.module)
        arrays = {
            "user_factors": module.user_factors.detach().cpu().numpy(),
            "item_factors": module.item_factors.detach().cpu().numpy(),
            "seen_users": self._require(self.seen_users),
            "item_popularity": self._require(self.item_popularity),
        }
        if module.item_bias is not None:
            arrays["item_bias"] = module.item_bias.detach().cpu().numpy()
        np.savez(path / _STATE_FILE, **arrays)

    def _load_state(self, path: Path) -> None:
        file = path / _STATE_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_STATE_FILE}")
        with np.load(file) as state:
            users, items = state["user_factors"], state["item_factors"]
            if self.config.item_bias != ("item_bias" in state):
                raise ModelFileError(f"{file}: item bias does not match the saved config")
            if users.shape[1] != self.config.factors or items.shape[1] != self.config.factors:
                raise ModelFileError(f"{file}: factor size does not match the saved config")
            module = BPRModule(users.shape[0], items.shape[0], users.shape[1], "item_bias" in state)
            with torch.no_grad():
                module.user_factors.copy_(torch.from_numpy(users))
                module.item_factors.copy_(torch.from_numpy(items))
                if module.item_bias is not None:
                    module.item_bias.copy_(torch.from_numpy(state["item_bias"]))
            self.seen_users = state["seen_users"].astype(bool)
            self.item_popularity = state["item_popularity"]
        self.module = module.to(self.device).eval()
