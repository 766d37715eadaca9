"""Cold-start users: recommendations from stated preferences, user attributes or a short history.

A user the model never saw is described by any of

* a **sentence of stated preferences** ("I like hard science fiction and heist films"),
* **attributes** (``{"age": 24, "occupation": "technician"}``), turned into a text such as
  ``"age: 24; occupation: technician"`` (quasi-identifiers such as zip codes are dropped,
  see :data:`lmrec.models.ctr._profile.HIDDEN_USER_FIELDS`),
* **a few interactions** — every inductive model (the text models, SASRec, item-kNN) reads an
  ad-hoc history without retraining, so this needs nothing new,

or a text together with a short history. The text is encoded by the model's own language
model (the fine-tuned one when it was tuned), so it lands in the space of the item texts,
and is scored in one of three ways (:attr:`ColdStartConfig.text_mode`):

``"sequence"``
    The text is a *pseudo-item*: its vector goes through the item adaptor (without an id
    embedding, like a new item) and the sequence model reads it as the first item of the
    history, ``[start, text, h1, …, hn]``. The user state is the transformer's last hidden
    state, scored against the item table as usual. With a history, the text is the oldest
    "item", so recent interactions weigh more as they accumulate.
``"adapted"``
    Direct similarity in the trained item space: ``cos(adaptor(text), item vector)``.
``"encoder"``
    Direct similarity in the language model's own space: ``cos(LM(text), LM(item text))``,
    the zero-training reference.

For ``"adapted"`` and ``"encoder"`` a non-empty history adds the model's own scores of the
history (each row standardised over the catalog first, so the two weigh equally).
:class:`~lmrec.models.text.TextMeanRecommender` has no adaptor and no sequence model: it
always treats the text as one more history vector of the mean.

A popularity prior is mixed in: ``final = z(text scores) + w · z(log(1 + users per
item))``, with ``z`` standardising a row over the catalog and ``w`` =
:attr:`ColdStartConfig.popularity_weight`. The defaults (``"adapted"``, ``w = 1``) were
chosen on the validation users of the cold-user split of both datasets (see
:data:`DEFAULT_TEXT_MODE`); ``bench/run_coldstart_users.py`` measures every mode
(``bench/results/coldstart-users.md``). The query text is encoded directly, never through the
on-disk vector cache, so users' sentences are not stored.

Example::

    scorer = ColdStartScorer(model)                       # a fitted text model
    scores = scorer.score_texts(["I like heist films"], [np.array([], dtype=np.int64)])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lmrec.errors import ConfigError
from lmrec.models.base import BaseRecommender
from lmrec.models.ctr._profile import HIDDEN_USER_FIELDS
from lmrec.models.text import TextMeanRecommender, TextSeqRecommender

TextMode = Literal["sequence", "adapted", "encoder"]

DEFAULT_TEXT_MODE: TextMode = "adapted"
"""With :data:`DEFAULT_POPULARITY_WEIGHT`, the setting of the validation grid of
``bench/run_coldstart_users.py`` with the best mean share of each dataset's best NDCG@10
(ML-100K 0.90, Amazon Scientific 0.89). The best per dataset differ: ``adapted`` with weight
4 on ML-100K, where popularity is strong, and ``encoder`` with weight 1 on Amazon. Without a
prior, ``sequence`` is the best of the three on both."""
DEFAULT_POPULARITY_WEIGHT = 1.0
"""See :data:`DEFAULT_TEXT_MODE`."""


class ColdStartConfig(BaseModel):
    """How a stated-preference text (and an optional short history) is scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_mode: TextMode = DEFAULT_TEXT_MODE
    """``"sequence"`` (the text as a pseudo-item read by the sequence model), ``"adapted"``
    (cosine to the trained item vectors) or ``"encoder"`` (cosine in the language model's
    space); see :mod:`lmrec.coldstart`."""
    popularity_weight: float = Field(default=DEFAULT_POPULARITY_WEIGHT, ge=0.0)
    """Weight ``w`` of the standardised log-popularity prior added to the standardised text
    scores; 0 turns the prior off."""


def query_text(text: str | None = None, attributes: Mapping[str, Any] | None = None) -> str:
    """The one text that describes a cold user: attributes first, then the stated preferences.

    Example: ``query_text("I like film noir", {"age": 24, "zip_code": "85711"})`` is
    ``"age: 24. I like film noir"`` (zip codes and other quasi-identifiers are dropped).

    Raises:
        TypeError: ``text`` is not a ``str``.
        ConfigError: Both are missing, the text is blank, or no attribute is left to describe
            the user.
    """
    if text is None and attributes is None:
        raise ConfigError("a cold-start query needs a text or user attributes")
    parts = []
    if attributes is not None:
        shown = attributes_text(attributes)
        if not shown:
            raise ConfigError(
                "attributes: nothing to describe the user with (all values are empty or hidden "
                f"fields such as {', '.join(sorted(HIDDEN_USER_FIELDS)[:2])})"
            )
        parts.append(shown)
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}, expected str")
        if not text.strip():
            raise ConfigError("text is empty: give a sentence of stated preferences")
        parts.append(" ".join(text.split()))
    return ". ".join(parts)


def attributes_text(attributes: Mapping[str, Any]) -> str:
    """``"age: 24; gender: M; occupation: technician"``: name and value of every attribute
    except empty values and :data:`~lmrec.models.ctr._profile.HIDDEN_USER_FIELDS`."""
    shown = []
    for name, value in attributes.items():
        if str(name).lower() in HIDDEN_USER_FIELDS or value is None:
            continue
        value = " ".join(str(value).split())
        if value:
            shown.append(f"{name}: {value}")
    return "; ".join(shown)


def supports_text(model: BaseRecommender) -> bool:
    """Whether ``model`` can place a text in its item space (the text models)."""
    return isinstance(model, TextSeqRecommender | TextMeanRecommender)


def item_popularity(model: BaseRecommender) -> np.ndarray:
    """Training users per item ``(n_items,)``, from the histories the model keeps."""
    histories: list[np.ndarray] = model._require(model.histories)
    counts = np.zeros(model.n_items, dtype=np.float64)
    for h in histories:
        counts[np.unique(np.asarray(h, dtype=np.int64))] += 1.0
    return counts


def standardize(scores: np.ndarray) -> np.ndarray:
    """Each row shifted to mean 0 and scaled to standard deviation 1 (constant rows → 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    mean = scores.mean(axis=-1, keepdims=True)
    std = scores.std(axis=-1, keepdims=True)
    return (scores - mean) / np.where(std > 1e-12, std, 1.0)


class ColdStartScorer:
    """Full-catalog scores for users described by a text, with a fitted text model.

    Args:
        model: A fitted :class:`~lmrec.models.text.TextSeqRecommender` or
            :class:`~lmrec.models.text.TextMeanRecommender`.
        config: Mode and popularity prior; defaults when ``None``.

    Raises:
        ConfigError: The model cannot read text.
    """

    def __init__(self, model: BaseRecommender, config: ColdStartConfig | None = None) -> None:
        if not supports_text(model):
            raise ConfigError(
                f"text: model {model.name!r} cannot read text; a stated-preference text needs "
                "a text model (text_seq or text_mean). Give a history of item ids instead"
            )
        self.model = model
        self.config = config if config is not None else ColdStartConfig()
        self._popularity: np.ndarray | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Language-model vectors ``(len(texts), text_dim)``, as the item texts were encoded."""
        model = self.model
        tuned = model.tuned_encoder() if isinstance(model, TextSeqRecommender) else None
        if tuned is not None:
            vectors = tuned.encode(list(texts))
        else:
            assert isinstance(model, TextSeqRecommender | TextMeanRecommender)
            vectors = model.text_encoder().encode(list(texts))
        return np.asarray(vectors, dtype=np.float32)

    def score_texts(self, texts: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``(len(texts), n_items)`` of each text with the history in the same row."""
        for t in texts:
            query_text(t)  # the same checks as the pipeline: str, not blank
        return self.score(self.encode(texts), histories)

    def score(self, queries: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores ``(len(queries), n_items)`` for query vectors from :meth:`encode`.

        Args:
            queries: ``(n, text_dim)`` language-model vectors of the users' texts.
            histories: Per row, time-ordered item indices (empty for a user with none).
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or len(queries) != len(histories):
            raise ValueError(
                f"queries must be (n, dim) with one row per history, got {queries.shape} for "
                f"{len(histories)} histories"
            )
        histories = [np.asarray(h, dtype=np.int64) for h in histories]
        model = self.model
        if isinstance(model, TextMeanRecommender):
            raw = _mean_scores(model, queries, histories)
        else:
            assert isinstance(model, TextSeqRecommender)
            raw = self._seq_scores(model, queries, histories)
        if self.config.popularity_weight == 0.0:
            return raw.astype(np.float32)
        if self._popularity is None:
            self._popularity = standardize(np.log1p(item_popularity(model)))
        mixed = standardize(raw) + self.config.popularity_weight * self._popularity
        return mixed.astype(np.float32)

    def _seq_scores(
        self, model: TextSeqRecommender, queries: np.ndarray, histories: list[np.ndarray]
    ) -> np.ndarray:
        mode = self.config.text_mode
        if mode == "sequence":
            return _pseudo_item_scores(model, queries, histories)
        module = model._require(model.module)
        with torch.no_grad():
            was_training = module.training
            module.eval()
            q = torch.from_numpy(queries).to(module.text_vectors.device)
            if mode == "adapted":
                table = module.item_table()
                sims = module.logits(module.adaptor(q), table).float().cpu().numpy()
            else:
                sims = _cosine(queries, module.text_vectors.float().cpu().numpy())
            module.train(was_training)
        return _with_history(model, sims, histories)


def _pseudo_item_scores(
    model: TextSeqRecommender, queries: np.ndarray, histories: list[np.ndarray]
) -> np.ndarray:
    """Run ``[start, adaptor(query), h1, …, hn]`` through the sequence model."""
    module = model._require(model.module)
    keep = model.config.max_len - 2  # room for the start token and the text
    out = np.empty((len(histories), module.n_items), dtype=np.float32)
    step = model.config.score_batch_size
    was_training = module.training
    module.eval()
    device = module.text_vectors.device
    with torch.no_grad():
        table = module.item_table()
        start_vector = module.sequence.item_embedding.weight[1]
        pseudo = module.adaptor(torch.from_numpy(queries).to(device))
        for first in range(0, len(histories), step):
            chunk = [h[-keep:] if keep > 0 else h[:0] for h in histories[first : first + step]]
            width = max(len(h) for h in chunk) + 2
            x = torch.zeros(len(chunk), width, table.shape[1], device=device)
            real = torch.zeros(len(chunk), width, dtype=torch.bool, device=device)
            placed = torch.zeros_like(real)
            for j, h in enumerate(chunk):
                begin = width - len(h) - 2
                x[j, begin] = start_vector
                x[j, begin + 1] = pseudo[first + j]
                if len(h):
                    x[j, begin + 2 :] = table[torch.from_numpy(h).to(device)]
                real[j, begin:] = True
                placed[j, begin + 1 :] = True  # the start token has no position, as in training
            hidden = module.sequence.contextualize(x, real, placed)[:, -1]
            out[first : first + len(chunk)] = module.logits(hidden, table).float().cpu().numpy()
    module.train(was_training)
    return out


def _mean_scores(
    model: TextMeanRecommender, queries: np.ndarray, histories: list[np.ndarray]
) -> np.ndarray:
    """Cosine to the mean of the normalised text vector and the history's item vectors."""
    vectors: np.ndarray = model._require(model.item_vectors)
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    users = np.empty_like(q)
    for j, h in enumerate(histories):
        if model.config.max_len is not None:
            h = h[-model.config.max_len :]
        users[j] = (q[j] + vectors[h].sum(axis=0)) / (len(h) + 1)
    return _cosine(users, vectors)


def _with_history(
    model: BaseRecommender, sims: np.ndarray, histories: list[np.ndarray]
) -> np.ndarray:
    """Text similarities, plus the model's own scores of each non-empty history."""
    rows = [j for j, h in enumerate(histories) if len(h)]
    if not rows:
        return sims
    out = sims.astype(np.float64)
    history_scores = model.score(np.full(len(rows), -1), [histories[j] for j in rows])
    out[rows] = standardize(sims[rows]) + standardize(history_scores)
    return out


def _cosine(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    u = users / np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    v = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    result: np.ndarray = (u @ v.T).astype(np.float32)
    return result
