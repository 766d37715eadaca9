"""Configuration of the SASRec baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmrec.training.config import TrainerConfig


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        epochs=200, batch_size=128, lr=1e-3, weight_decay=0.0, warmup_ratio=0.0, patience=10
    )


class SASRecConfig(BaseModel):
    """Hyperparameters of :class:`SASRecRecommender` (Kang & McAuley 2018, trained with
    full-softmax cross-entropy as in Petrov & Macdonald 2023 and Klenitskiy & Vasilev 2023)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sasrec"] = "sasrec"
    """Discriminator naming the model family."""

    dim: int = Field(default=64, ge=1)
    """Width of item embeddings and hidden states."""

    n_layers: int = Field(default=2, ge=1)
    """Number of causal self-attention blocks."""

    n_heads: int = Field(default=2, ge=1)
    """Attention heads per block; must divide ``dim``."""

    ffn_multiplier: int = Field(default=1, ge=1)
    """Hidden width of each block's feed-forward layer, as a multiple of ``dim``."""

    max_len: int = Field(default=50, ge=1)
    """Most recent items a user's sequence keeps, in training and when scoring."""

    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Dropout on the input embeddings, on each residual branch and inside each feed-forward
    layer (attention weights are not dropped, see :class:`CausalSelfAttention`)."""

    norm_first: bool = True
    """Pre-LN blocks (LayerNorm before attention / feed-forward, plus a final LayerNorm)
    when true; post-LN blocks as in the original Transformer when false."""

    cosine: bool = False
    """Score with the cosine of the hidden state and the item embedding, divided by
    ``temperature``, instead of the raw dot product (normalised embeddings stop frequent
    items from winning through the length of their vectors)."""

    temperature: float = Field(default=0.05, gt=0.0)
    """Softmax temperature of the cosine scores; unused without ``cosine``."""

    tie_output: bool = True
    """Score items with their input embeddings (tied weights, as in the SASRec paper); when
    false, with a second embedding table of their own, so that what an item predicts (as
    input) and how it is predicted (as output) can differ: item-to-item transitions need
    not be symmetric."""

    mixture: int = Field(default=1, ge=1, le=16)
    """Softmax components of the output layer: 1 is the usual softmax over dot products;
    ``k > 1`` scores with a mixture of ``k`` softmaxes (Yang et al. 2018), each over its own
    context of the state, so that the next-item distribution is not bound to one dot
    product of width ``dim`` (the "softmax bottleneck"). Scores are then log-probabilities
    and ``top_items`` sorts full rows."""

    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Label smoothing of the cross-entropy loss (0 = none)."""

    augment: Literal["none", "reverse", "shuffle"] = "none"
    """Extra training sequences: each user's sequence also read backwards (``"reverse"``),
    or in one fixed random order (``"shuffle"``, seeded by the trainer's seed), so that the
    model also learns item pairs regardless of their order (what item-kNN's symmetric
    co-occurrence uses). Scoring is unchanged."""

    future_window: int = Field(default=1, ge=1, le=20)
    """Items after each slot the loss asks the model to predict: 1 is the usual next item;
    ``w > 1`` adds the cross-entropy of the 2nd..w-th next items, weighted
    ``future_decay ** (j - 1)`` (a dense "all-action" loss, as in PinnerFormer, Pancha et
    al. 2022), so that a state also learns what comes a little later. Scoring is unchanged."""

    future_decay: float = Field(default=0.5, gt=0.0, le=1.0)
    """Weight ratio between the ``j``-th and the ``(j-1)``-th next item's loss."""

    init_embeddings: Literal["random", "cooccurrence"] = "random"
    """How the item embeddings start: ``"random"`` (normal, std 0.02) or ``"cooccurrence"``
    (the truncated SVD of the items' PPMI co-occurrence in training histories, scaled to the
    same std; items without co-occurrence stay random)."""

    contrastive: Literal["none", "dropout", "same_target"] = "none"
    """Contrastive regulariser of the sequence representation (DuoRec, Qiu et al. 2022):
    ``"dropout"`` pulls two dropout views of each training sequence together against the
    other sequences of the batch; ``"same_target"`` uses as second view another user's
    sequence with the same last target (a dropout view where there is none)."""

    contrastive_weight: float = Field(default=0.1, ge=0.0)
    """Weight of the contrastive loss added to the cross-entropy; unused with ``"none"``."""

    contrastive_temperature: float = Field(default=1.0, gt=0.0)
    """Temperature of the contrastive softmax over dot products of sequence states."""

    members: int = Field(default=1, ge=1, le=16)
    """Independently trained copies of the network (seeds ``trainer.seed``,
    ``trainer.seed + 1``, ...), each early-stopped on its own; an item's score is the mean of
    the members' log-softmax scores. Averaging removes much of one training run's variance
    at ``members`` times the training and scoring cost; 1 is a single network (raw logits as
    scores). With several, ``top_items`` sorts full rows."""

    score_batch_size: int = Field(default=256, ge=1)
    """Histories encoded at once by ``score``."""

    trainer: TrainerConfig = Field(default_factory=_default_trainer)
    """Optimisation settings; early stopping monitors validation ``ndcg@10``."""

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SASRecConfig:
        if self.dim % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide dim={self.dim}")
        return self
