"""Configuration of the text recommenders: the text sequential model and the mean-of-history
reference."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmrec.text.config import TextEncoderConfig
from lmrec.text.tuning import TuningConfig
from lmrec.training.config import TrainerConfig


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        epochs=100, batch_size=128, lr=1e-3, weight_decay=0.0, warmup_ratio=0.0, patience=10
    )


class TextSeqConfig(BaseModel):
    """Hyperparameters of :class:`TextSeqRecommender`.

    Item vector = adaptor(PLM(item text)) [+ item-id embedding]; user vector = a causal
    transformer over the history's item vectors (the SASRec blocks); score = similarity of
    the two divided by ``temperature``; loss = softmax cross-entropy over the whole catalog.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["text_seq"] = "text_seq"
    """Discriminator naming the model family."""

    encoder: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    """The pretrained language model that reads item text, and how its vectors are pooled."""

    tuning: TuningConfig = Field(default_factory=TuningConfig)
    """How the language model is fine-tuned: ``frozen`` (vectors computed once and cached),
    ``top_k``, ``full``, ``lora``, ``adalora``, ``prefix`` or ``adapter``."""

    dim: int = Field(default=128, ge=1)
    """Width of the adapted item vectors and of the transformer."""

    n_layers: int = Field(default=2, ge=1)
    """Causal self-attention blocks over the history."""

    n_heads: int = Field(default=2, ge=1)
    """Attention heads per block; must divide ``dim``."""

    ffn_multiplier: int = Field(default=1, ge=1)
    """Hidden width of each block's feed-forward layer, as a multiple of ``dim``."""

    max_len: int = Field(default=50, ge=1)
    """Most recent history items read, in training and when scoring."""

    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Dropout inside the transformer blocks and on their input."""

    adaptor_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout on the language-model vectors before the adaptor."""

    id_fusion: bool = False
    """Add a learned item-id embedding to each item's text vector (text + id fusion)."""

    id_dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    """With ``id_fusion``: probability that an item's whole id embedding is dropped in a
    training step, so the text path alone must also predict well (and new items, which have
    no trained id, are served from text)."""

    cosine: bool = True
    """Score with cosine similarity (both vectors L2-normalised) rather than a raw dot
    product."""

    temperature: float = Field(default=0.05, gt=0.0)
    """Scores are divided by this before the softmax; small values sharpen it."""

    fresh_items: int = Field(default=256, ge=1)
    """When the encoder itself trains: the most items per batch whose vectors are recomputed
    with gradients (the batch's target items, a random subset beyond this). Every other item
    is scored from the vectors cached at the start of the epoch, so the softmax still covers
    the whole catalog (in-batch plus cached negatives); the cache is refreshed every epoch."""

    score_batch_size: int = Field(default=256, ge=1)
    """Histories scored at once."""

    content_weight: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["auto"] = 0.0
    """Blend with the content prior (cosine of an item's language-model vector to the mean
    of the history's, as ``text_mean``): ``(1 - w) * z(trained) + w * z(content)``, both
    standardised per user over the catalog (:mod:`lmrec.models.text._content`). Lifts new
    items, which the trained score knows only through the adaptor. ``"auto"``: the weight of
    ``(0, 0.05, 0.1, 0.2, 0.3, 0.5)`` with the best validation NDCG@10, chosen after training
    (0 without a validation set). A fixed weight also applies to early stopping."""

    new_item_boost: float = Field(default=0.0, ge=0.0, le=5.0)
    """Score boost of new items (those without a training interaction: added with
    ``add_items`` or held out of training), in standard deviations of each user's scores
    over the catalog. The trained scores carry what training learned about known items
    (popularity first), which new items lack, so they rarely reach a top-10; the boost trades
    some accuracy on known items for exposure of new ones (measured in
    ``bench/results/coldstart-items.md``). 0: no boost. Applies after the content blend."""

    trainer: TrainerConfig = Field(default_factory=_default_trainer)
    """Optimisation settings; early stopping monitors validation ``ndcg@10``."""

    encoder_trainer: TrainerConfig | None = None
    """A warm start for a trained encoder: when set (and ``tuning.strategy`` is not
    ``frozen``), the model first trains on the untouched encoder's vectors with ``trainer``
    (fast: no language model in the loop), then encoder and model train together with these
    settings (the encoder's learning rate is ``lr * tuning.lr_scale``). Far fewer of the slow
    encoder epochs are needed that way. If the second stage never beats the first on
    validation, the first stage's model is kept. Unset: one stage with ``trainer``."""

    init_from: str | None = None
    """A saved ``text_seq`` model (its folder, or a run directory holding ``model/``) whose
    weights (adaptor, id embeddings, transformer) start this one; the architecture must
    match. With ``encoder_trainer`` it replaces the first stage: e.g. fine-tune the encoder
    of a model trained before with a frozen one."""

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> TextSeqConfig:
        if self.dim % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide dim={self.dim}")
        return self


class TextMeanConfig(BaseModel):
    """Hyperparameters of :class:`TextMeanRecommender`, the zero-training reference."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text_mean"] = "text_mean"
    """Discriminator naming the model family."""

    encoder: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    """The pretrained language model that reads item text."""

    max_len: int | None = Field(default=None, ge=1)
    """Average only the most recent items of a history; ``None`` averages all of them."""

    score_batch_size: int = Field(default=512, ge=1)
    """Histories scored at once."""
