"""Membership-inference audit: does a trained model give away who it was trained on?

The attack is the loss-threshold attack (Yeom et al. 2018): a model tends to fit the data it
was trained on better than data it never saw, so an attacker who can query the model guesses
"member" when the loss of an interaction is low. Its success over all thresholds is the
attack AUC: 0.5 means the losses of members and non-members are indistinguishable (nothing
leaks through them), 1.0 means every member is recognised.

The loss of an interaction is the model's cross-entropy of the item given the user's
preceding items, ``-log softmax(scores)[item]`` over the whole catalog: the training loss of
the sequential models, a softmax-normalised score for the others. Two designs, picked by the
run's split:

``users`` (a ``cold_user`` split, the clean one)
    Members: training users, the loss of their last training interaction given the ones
    before. Non-members: test users, whom training never saw, the loss of their last
    interaction given the ones before. Both groups are random users of the same population,
    so without leakage the two loss distributions are the same.
``interactions`` (any other split, e.g. leave-one-out)
    Members: the last training interaction of each test user; non-members: the same users'
    held-out test interaction, given everything before it. Easier to run but confounded:
    the held-out interaction is later in time and follows a longer history, so an AUC away
    from 0.5 is not all leakage. Prefer a ``cold_user`` run for a verdict.

The AUC comes with a stratified bootstrap confidence interval (members and non-members
resampled separately). Under (ε, δ)-DP the attack's advantage (TPR - FPR) is bounded by
``e^ε - 1 + δ``; only small ε make that bound tight, so the audit measures rather than proves.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lmrec.data.splitting import EncodedSplit
from lmrec.errors import DataError, ModelFileError
from lmrec.evaluation.metrics import auc
from lmrec.models.base import BaseRecommender

AUDIT_FILE = "audit.json"
"""Name of the audit result inside a run directory."""

Design = Literal["users", "interactions"]


@dataclass
class MembershipSamples:
    """Per-interaction losses of members and non-members, and how they were chosen."""

    member_losses: np.ndarray
    nonmember_losses: np.ndarray
    design: Design


@dataclass
class AuditResult:
    """The outcome of a membership-inference audit.

    Attributes:
        auc: Attack AUC (0.5: no leakage through the loss).
        ci_low: Lower end of the bootstrap confidence interval of ``auc``.
        ci_high: Upper end.
        confidence: Level of the interval (0.95).
        advantage: The attack's best TPR - FPR over all thresholds (0: none).
        n_members: Member interactions scored.
        n_nonmembers: Non-member interactions scored.
        member_loss_mean: Mean loss of the members' interactions.
        nonmember_loss_mean: Mean loss of the non-members'.
        design: ``users`` or ``interactions`` (see the module docstring).
        statistic: What the threshold applies to.
        bootstrap: Bootstrap resamples.
        seed: Seed of the user sample and the bootstrap.
        privacy: The run's DP guarantee, when it was trained with DP-SGD.
        seconds: Wall time of the audit.
    """

    auc: float
    ci_low: float
    ci_high: float
    confidence: float
    advantage: float
    n_members: int
    n_nonmembers: int
    member_loss_mean: float
    nonmember_loss_mean: float
    design: Design
    statistic: str = "cross-entropy of the item given the preceding items"
    bootstrap: int = 1000
    seed: int = 0
    privacy: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One readable line: the AUC, its interval and the verdict."""
        pct = round(100 * self.confidence)
        covers = self.ci_low <= 0.5 <= self.ci_high
        verdict = (
            "no leakage detected" if covers else "members are distinguishable from non-members"
        )
        return (
            f"membership-inference attack AUC {self.auc:.4f} ({pct}% CI {self.ci_low:.4f}-"
            f"{self.ci_high:.4f}; advantage {self.advantage:.4f}) on {self.n_members} members "
            f"and {self.n_nonmembers} non-members ({self.design} design): {verdict}"
        )


# -- losses ---------------------------------------------------------------------------------
def interaction_losses(
    model: BaseRecommender,
    users: np.ndarray,
    histories: Sequence[np.ndarray],
    items: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """``-log softmax(score)[item]`` of each (user, history, item), over the whole catalog.

    Args:
        model: A fitted recommender.
        users: User indices (ignored by inductive models).
        histories: Item indices before each interaction, oldest first.
        items: The interaction's item index.
        batch_size: Interactions scored at once.
    """
    out = np.empty(len(items), dtype=np.float64)
    for start in range(0, len(items), batch_size):
        stop = start + batch_size
        scores = model.score(users[start:stop], list(histories[start:stop])).astype(np.float64)
        scores = np.nan_to_num(scores, nan=-1e30, neginf=-1e30, posinf=1e30)
        top = scores.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
        picked = scores[np.arange(len(scores)), items[start:stop]]
        out[start:stop] = log_norm - picked
    return out


def _last_interactions(
    sequences: Sequence[np.ndarray], users: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    histories = [np.asarray(sequences[u][:-1], dtype=np.int64) for u in users]
    items = np.array([sequences[u][-1] for u in users], dtype=np.int64)
    return histories, items


def _sample(users: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or len(users) <= n:
        return users
    return np.sort(rng.choice(users, size=n, replace=False))


def membership_samples(
    model: BaseRecommender,
    split: EncodedSplit,
    max_users: int | None = 2000,
    seed: int = 0,
) -> MembershipSamples:
    """Losses of member and non-member interactions of a split the model was trained on.

    Args:
        model: The model, fitted on ``split.train``.
        split: The encoded split of its run.
        max_users: Users sampled per group (``None``: all).
        seed: Seed of the samples.

    Raises:
        DataError: A group is empty.
    """
    rng = np.random.default_rng(seed)
    train_seq = split.train.sequences()
    test_seq = split.test.sequences()
    if split.name == "cold_user":
        design: Design = "users"
        members = np.array([u for u, s in enumerate(train_seq) if len(s)], dtype=np.int64)
        outsiders = np.array([u for u, s in enumerate(test_seq) if len(s)], dtype=np.int64)
        members, outsiders = _sample(members, max_users, rng), _sample(outsiders, max_users, rng)
        m_hist, m_items = _last_interactions(train_seq, members)
        n_hist, n_items = _last_interactions(test_seq, outsiders)
    else:
        design = "interactions"
        known = split.train_and_valid().sequences()
        both = np.array(
            [u for u in range(len(test_seq)) if len(test_seq[u]) and len(train_seq[u])],
            dtype=np.int64,
        )
        members = outsiders = _sample(both, max_users, rng)
        m_hist, m_items = _last_interactions(train_seq, members)
        n_hist = [np.asarray(known[u], dtype=np.int64) for u in outsiders]
        n_items = np.array([test_seq[u][0] for u in outsiders], dtype=np.int64)
    if len(members) == 0 or len(outsiders) == 0:
        raise DataError(
            f"the membership audit needs members and non-members; the {split.name} split has "
            f"{len(members)} and {len(outsiders)}"
        )
    return MembershipSamples(
        member_losses=interaction_losses(model, members, m_hist, m_items),
        nonmember_losses=interaction_losses(model, outsiders, n_hist, n_items),
        design=design,
    )


# -- the attack -----------------------------------------------------------------------------
def _advantage(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """max over thresholds of TPR - FPR, guessing "member" at scores >= the threshold."""
    scores = np.concatenate([member_scores, nonmember_scores])
    is_member = np.concatenate(
        [np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    ).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, m = scores[order], is_member[order]
    tpr = np.cumsum(m) / max(1, int(m.sum()))
    fpr = np.cumsum(~m) / max(1, int((~m).sum()))
    last_of_tie = np.append(s[1:] != s[:-1], True)  # thresholds between distinct scores
    return float(max(0.0, np.max((tpr - fpr)[last_of_tie])))


def attack_auc(
    member_losses: np.ndarray,
    nonmember_losses: np.ndarray,
    design: Design = "users",
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AuditResult:
    """The loss-threshold attack's AUC, its bootstrap interval and advantage.

    Args:
        member_losses: Losses of interactions the model trained on.
        nonmember_losses: Losses of comparable interactions it never saw.
        design: Recorded in the result.
        bootstrap: Stratified bootstrap resamples for the interval.
        confidence: Level of the interval.
        seed: Seed of the resampling.

    Raises:
        DataError: A group is empty.
    """
    members = -np.asarray(member_losses, dtype=np.float64)  # low loss: "member"
    others = -np.asarray(nonmember_losses, dtype=np.float64)
    if len(members) == 0 or len(others) == 0:
        raise DataError("the attack needs at least one member and one non-member loss")
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
    point = auc(labels, np.concatenate([members, others]))
    rng = np.random.default_rng(seed)
    draws = np.empty(bootstrap)
    for b in range(bootstrap):
        pm = members[rng.integers(0, len(members), len(members))]
        po = others[rng.integers(0, len(others), len(others))]
        draws[b] = auc(labels, np.concatenate([pm, po]))
    tail = (1.0 - confidence) / 2
    low, high = (
        (float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail)))
        if bootstrap
        else (math.nan, math.nan)
    )
    return AuditResult(
        auc=point,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        advantage=_advantage(members, others),
        n_members=len(members),
        n_nonmembers=len(others),
        member_loss_mean=float(np.mean(member_losses)),
        nonmember_loss_mean=float(np.mean(nonmember_losses)),
        design=design,
        bootstrap=bootstrap,
        seed=seed,
    )


def audit_model(
    model: BaseRecommender,
    split: EncodedSplit,
    max_users: int | None = 2000,
    bootstrap: int = 1000,
    seed: int = 0,
) -> AuditResult:
    """Attack a fitted model with the interactions of the split it was trained on."""
    start = time.perf_counter()
    samples = membership_samples(model, split, max_users, seed)
    result = attack_auc(
        samples.member_losses, samples.nonmember_losses, samples.design, bootstrap, seed=seed
    )
    result.seconds = time.perf_counter() - start
    return result


def audit_run(
    run_dir: str | Path,
    max_users: int | None = 2000,
    bootstrap: int = 1000,
    seed: int = 0,
    write: bool = True,
) -> AuditResult:
    """Audit the model of a run directory on its own split; write ``audit.json`` there.

    The run's data are prepared again from its ``config.json`` (with its ``[privacy]``
    table, so pseudonymized runs need their key).

    Raises:
        ModelFileError: ``run_dir`` is not a run directory with a model.
        DataError: The split has no members or no non-members.
    """
    from lmrec.experiment import load_run_model, prepare_data, read_run_config

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = load_run_model(run_dir)
    _, split = prepare_data(config)
    if model.n_items != len(split.item_map):
        raise ModelFileError(
            f"{run_dir}: the model has {model.n_items} items but its split "
            f"{len(split.item_map)}; items were added after training, so the run no longer "
            "matches its data"
        )
    result = audit_model(model, split, max_users, bootstrap, seed)
    record = run_dir / "result.json"
    if record.exists():
        try:
            result.privacy = dict(json.loads(record.read_text()).get("privacy") or {})
        except (OSError, ValueError):
            result.privacy = {}
    if write:
        (run_dir / AUDIT_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


__all__ = [
    "AUDIT_FILE",
    "AuditResult",
    "MembershipSamples",
    "attack_auc",
    "audit_model",
    "audit_run",
    "interaction_losses",
    "membership_samples",
]
