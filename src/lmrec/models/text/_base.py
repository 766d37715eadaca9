"""What every text recommender shares: the catalog's item texts, their frozen vectors, and
saving both next to the model."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ConfigError, DataError, ModelFileError
from lmrec.models.base import AddedItems, BaseRecommender
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

    def add_items(self, texts: Mapping[str, str]) -> AddedItems:
        """Add items from their text, or replace the text of known ones; no retraining.

        A new item is appended to the item map and gets its vector from the same encoder
        the catalog's vectors came from (the frozen language model, or the fine-tuned one),
        so it can be recommended at once. A known id keeps its index and training history
        (and, in a fused model, its learned id embedding); only its text and text vector
        change. Nothing changes when encoding fails.

        Args:
            texts: Item id -> item text, in the form the catalog uses (see
                :func:`lmrec.items.item_text`).

        Returns:
            The appended ids and the updated ids, in the order given.

        Raises:
            NotFittedError: The model is not fitted.
            DataError: An id or a text is not a non-empty string.
        """
        item_map: IdMap = self._require(self.item_map)
        current: list[str] = list(self._require(self.item_texts))
        for item_id, text in texts.items():
            if not isinstance(item_id, str) or not item_id.strip():
                raise DataError(f"item id must be a non-empty string, got {item_id!r}")
            if not isinstance(text, str) or not text.strip():
                raise DataError(
                    f"item {item_id!r}: text must be a non-empty string, got {text!r}",
                    column="text",
                )
        new_ids = [i for i in texts if i not in item_map]
        old_ids = [i for i in texts if i in item_map]
        if not new_ids and not old_ids:
            return AddedItems()
        start = time.perf_counter()
        vectors = self._item_text_vectors([texts[i] for i in [*new_ids, *old_ids]])
        self.encode_seconds += time.perf_counter() - start
        rows = item_map.encode(old_ids)
        self._store_item_vectors(vectors[: len(new_ids)], rows, vectors[len(new_ids) :])
        for row, item_id in zip(rows, old_ids, strict=True):
            current[int(row)] = texts[item_id]
        self.item_texts = current + [texts[i] for i in new_ids]
        if new_ids:
            self.item_map = IdMap([*item_map.to_list(), *new_ids], "item")
        return AddedItems(added=new_ids, updated=old_ids)

    def _item_text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of new item texts, as the model's own catalog vectors were made."""
        return self.frozen_vectors(texts)

    def _store_item_vectors(
        self, appended: np.ndarray, rows: np.ndarray, replaced: np.ndarray
    ) -> None:
        """Append ``appended`` after the last item and overwrite the vectors of ``rows``."""
        raise ConfigError(f"model {self.name!r} cannot add items")

    def _save_texts(self, path: Path) -> None:
        texts = self._require(self.item_texts)
        (path / _TEXTS_FILE).write_text(json.dumps(texts))

    def _load_texts(self, path: Path) -> None:
        file = path / _TEXTS_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_TEXTS_FILE}")
        self.item_texts = list(json.loads(file.read_text()))
