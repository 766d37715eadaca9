"""Item text encoding with pretrained language models.

:class:`ItemTextEncoder` wraps a Hugging Face checkpoint (all-MiniLM-L6-v2 by default, loaded
offline); :func:`encode_items` turns a dataset's catalog into one vector per item, cached on
disk by model and text hash.

Example::

    from lmrec.text import ItemTextEncoder, TextEncoderConfig, encode_items

    encoder = ItemTextEncoder(TextEncoderConfig(max_length=64))
    vectors = encode_items(dataset, encoder)   # (n_items, 384), rows in item-map order
"""

from __future__ import annotations

from lmrec.text.cache import (
    VectorCache,
    encode_items,
    encode_texts,
    encoder_cache_key,
    item_texts,
    text_digest,
)
from lmrec.text.config import DEFAULT_MODEL, PoolingName, TextEncoderConfig
from lmrec.text.encoder import ItemTextEncoder, default_model_path
from lmrec.text.pooling import (
    cls_pool,
    is_decoder_only,
    last_token_pool,
    mean_pool,
    pool,
    resolve_pooling,
)
from lmrec.text.tuning import Strategy, TunableEncoder, TuningConfig

__all__ = [
    "DEFAULT_MODEL",
    "ItemTextEncoder",
    "PoolingName",
    "Strategy",
    "TextEncoderConfig",
    "TunableEncoder",
    "TuningConfig",
    "VectorCache",
    "cls_pool",
    "default_model_path",
    "encode_items",
    "encode_texts",
    "encoder_cache_key",
    "is_decoder_only",
    "item_texts",
    "last_token_pool",
    "mean_pool",
    "pool",
    "resolve_pooling",
    "text_digest",
]
