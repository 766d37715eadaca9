"""What every text recommender shares: the catalog's item texts, their frozen vectors, and
saving both next to the model."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from lmrec.data.schema import InteractionData
from lmrec.errors import ConfigError, ModelFileError
from lmrec.models.base import BaseRecommender
from lmrec.text.cache import encode_texts
from lmrec.text.config import TextEncoderConfig
from lmrec.text.encoder import ItemTextEncoder

_TEXTS_FILE = "item_texts.json"


class TextRecommenderBase(BaseRecommender):
    """A recommender that reads item text: ``set_item_texts`` must be called before ``fit``.

    ``lmrec.experiment`` does that from the dataset (``lmrec.text.item_texts``); in code::

        model = TextSeqRecommender()
        model.set_item_texts(item_texts(dataset))   # row i = item index i
        model.fit(split.train, split.valid_task())
    """

    uses_item_text: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.item_texts: list[str] | None = None
        self._encoder: ItemTextEncoder | None = None
        self.encode_seconds = 0.0
        """Seconds spent in the language model (loading it included) since construction."""

    def set_item_texts(self, texts: Sequence[str]) -> None:
        """Give the text of every catalog item, row ``i`` being item index ``i``.

        Raises:
            TypeError: When a text is not a ``str``.
        """
        checked = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"item text {i} is {type(text).__name__}, expected str")
            checked.append(text)
        self.item_texts = checked

    def _texts_for(self, train: InteractionData) -> list[str]:
        if self.item_texts is None:
            raise ConfigError(
                f"{self.name} reads item text: call set_item_texts(lmrec.text.item_texts"
                "(dataset)) before fit"
            )
        if len(self.item_texts) != train.n_items:
            raise ConfigError(
                f"{self.name}: {len(self.item_texts)} item texts were given for a catalog of "
                f"{train.n_items} items"
            )
        return self.item_texts

    def _encoder_config(self) -> TextEncoderConfig:
        config: TextEncoderConfig = self.config.encoder  # type: ignore[attr-defined]
        return config

    def text_encoder(self) -> ItemTextEncoder:
        """The pretrained encoder (loaded on first use)."""
        if self._encoder is None:
            self._encoder = ItemTextEncoder(self._encoder_config())
        return self._encoder

    def frozen_vectors(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Vectors of ``texts`` from the pretrained encoder, through the on-disk cache."""
        start = time.perf_counter()
        vectors = encode_texts(self.text_encoder(), texts, show_progress=show_progress)
        self.encode_seconds += time.perf_counter() - start
        return vectors

    def _save_texts(self, path: Path) -> None:
        texts = self._require(self.item_texts)
        (path / _TEXTS_FILE).write_text(json.dumps(texts))

    def _load_texts(self, path: Path) -> None:
        file = path / _TEXTS_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_TEXTS_FILE}")
        self.item_texts = list(json.loads(file.read_text()))
