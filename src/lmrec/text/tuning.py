"""Fine-tuning the item text encoder: which weights train, and how.

:class:`TunableEncoder` takes a fresh :class:`~lmrec.text.ItemTextEncoder` and prepares its
model in place for one :data:`Strategy`:

``frozen``
    Nothing trains (vectors can be computed once and cached).
``top_k``
    Only the last ``top_k`` transformer layers train (with GPT-2's final ``ln_f``); embeddings
    and lower layers are frozen. :meth:`TunableEncoder.lower_states` computes the states
    entering the trained layers once, without gradients, and
    :meth:`TunableEncoder.upper_forward` reruns only the top layers on them.
``full``
    Every weight trains, except BERT's pooler, which pooling never uses.
``lora`` / ``adalora``
    Low-rank updates of the attention projections (Hu et al. 2021; AdaLoRA, Zhang et al. 2023,
    reallocates the rank budget during training), through ``peft``.
``prefix``
    Learned key/value prefixes in every attention layer (Li & Liang 2021; P-tuning v2), through
    ``peft``.
``adapter``
    Bottleneck adapters after every transformer layer (:mod:`lmrec.text.adapters`, our code).

Notes on the libraries (peft 0.21, transformers 5.24):

* peft's prefix tuning hands the prefixes to the model as ``past_key_values``, which
  transformers 5.24 accepts as a deprecated alias of ``cache`` (with a warning) and plans to
  remove in 5.40; the prefix tests fail loudly if that ever silences the prefixes. The model
  also treats the prefix as earlier tokens, so real tokens take positions
  ``prefix_tokens .. prefix_tokens + length - 1`` (as in the original prefix tuning), and
  ``max_length + prefix_tokens`` must fit the model's positions.
* AdaLoRA needs the number of training steps up front (:meth:`TunableEncoder.set_total_steps`)
  and its rank reallocation after every optimizer step, while the gradients are still there
  (:meth:`TunableEncoder.on_step`). peft adds AdaLoRA's orthogonality penalty only to outputs
  that carry a ``loss``, which feature-extraction outputs do not, so it is not applied here.
* GPT-2's attention projection ``c_attn`` is a ``Conv1D`` (transposed weight); LoRA is told so.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn

from lmrec.errors import ConfigError, ModelFileError
from lmrec.text.adapters import ADAPTER_NAME, insert_adapters
from lmrec.text.encoder import ItemTextEncoder
from lmrec.text.layers import LayerStack, find_layer_stack, run_top_layers, states_entering
from lmrec.text.pooling import pool

#: How the text encoder is fine-tuned; see :mod:`lmrec.text.tuning`.
Strategy = Literal["frozen", "top_k", "full", "lora", "adalora", "prefix", "adapter"]

_PEFT_STRATEGIES = frozenset({"lora", "adalora", "prefix"})
# LoRA targets by model type when lora_targets is unset (peft's own table covers the rest).
_DEFAULT_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "gpt2": ("c_attn",),
}
# AdaLoRA cannot be built without a step count; the real one comes from set_total_steps.
_PLACEHOLDER_TOTAL_STEPS = 1


class TuningConfig(BaseModel):
    """How the item text encoder is fine-tuned together with the recommender."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = "frozen"
    """``frozen``, ``top_k``, ``full``, ``lora``, ``adalora``, ``prefix`` or ``adapter``; see
    :mod:`lmrec.text.tuning`."""
    top_k: int = Field(default=1, ge=1)
    """Top transformer layers trained by ``top_k``."""
    lora_r: int = Field(default=8, ge=1)
    """Rank of the LoRA updates (``lora``)."""
    lora_alpha: int = Field(default=16, ge=1)
    """LoRA scaling numerator: updates are scaled by ``lora_alpha / rank`` (``lora``,
    ``adalora``)."""
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Dropout on the input of the low-rank branch (``lora``, ``adalora``)."""
    lora_targets: tuple[str, ...] | None = None
    """Names (suffixes) of the modules LoRA/AdaLoRA adapt; unset picks the attention query and
    value projections by architecture (BERT: ``query``, ``value``; GPT-2: ``c_attn``)."""
    adalora_init_r: int = Field(default=12, ge=1)
    """Rank every adapted module starts with under ``adalora``."""
    adalora_target_r: int = Field(default=4, ge=1)
    """Average rank per module that ``adalora``'s budget shrinks to by the last step."""
    prefix_tokens: int = Field(default=16, ge=1)
    """Learned key/value positions prepended in every attention layer (``prefix``)."""
    adapter_dim: int = Field(default=64, ge=1)
    """Bottleneck width of each ``adapter``."""
    lr_scale: float = Field(default=1.0, gt=0.0)
    """The encoder's learning rate as a multiple of the recommender's."""

    @field_validator("lora_targets")
    @classmethod
    def _targets_named(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not name.strip() for name in value)):
            raise ValueError("lora_targets must list module names (or be left unset)")
        return value

    @model_validator(mode="after")
    def _adalora_budget_shrinks(self) -> TuningConfig:
        if self.adalora_target_r > self.adalora_init_r:
            raise ValueError(
                f"adalora_target_r={self.adalora_target_r} must not exceed "
                f"adalora_init_r={self.adalora_init_r}"
            )
        return self


class TunableEncoder(nn.Module):
    """An :class:`~lmrec.text.ItemTextEncoder` whose model is prepared for fine-tuning.

    The encoder's model is changed in place (``requires_grad`` flags, peft wrapping, inserted
    adapters), so the encoder's own ``encode`` and ``forward_tensors`` use the tuned model too;
    give it a fresh encoder. Parameters follow the module: ``tunable.to(device)`` moves them
    (the encoder's ``device``, where it puts token ids, does not change).

    Args:
        encoder: A freshly loaded encoder.
        config: The strategy and its settings; ``frozen`` when omitted.

    Raises:
        ConfigError: ``top_k`` exceeds the layer count, the LoRA targets match no module, the
            prefix does not fit the model's positions, the model has no known layer layout,
            or the encoder was prepared before.
    """

    def __init__(self, encoder: ItemTextEncoder, config: TuningConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else TuningConfig()
        self.encoder = encoder
        self._stack: LayerStack | None = None
        self._total_steps: int | None = None
        model = encoder.model
        if hasattr(model, "peft_config") or any(
            name.endswith(ADAPTER_NAME) for name, _ in model.named_modules()
        ):
            raise ConfigError(
                "strategy: the encoder's model was already prepared for tuning; "
                "give TunableEncoder a freshly loaded ItemTextEncoder"
            )
        strategy = self.config.strategy
        if strategy in _PEFT_STRATEGIES:
            encoder.model = _peft_model(model, self.config, encoder.config.max_length)
        else:
            model.requires_grad_(strategy == "full")
            if strategy == "top_k":
                self._stack = self._top_layers(model)
            elif strategy == "adapter":
                stack = find_layer_stack(model, "strategy 'adapter'")
                insert_adapters(stack.layers, encoder.dim, self.config.adapter_dim)
        pooler = getattr(encoder.model, "pooler", None)
        if isinstance(pooler, nn.Module):  # BERT's pooler: unused by every pooling we do
            pooler.requires_grad_(False)
        encoder.model.to(encoder.device)
        self.model: nn.Module = encoder.model

    def _top_layers(self, model: nn.Module) -> LayerStack:
        stack = find_layer_stack(model, "strategy 'top_k'")
        k = self.config.top_k
        if k > len(stack):
            raise ConfigError(
                f"top_k: {k} exceeds the {len(stack)} transformer layers of the model"
            )
        for layer in stack.layers[-k:]:
            layer.requires_grad_(True)
        if stack.final_norm is not None:
            stack.final_norm.requires_grad_(True)
        return stack

    def extra_repr(self) -> str:
        return f"strategy={self.config.strategy!r}"

    @property
    def trains_encoder(self) -> bool:
        """Whether any encoder weight trains (false only for ``frozen``)."""
        return self.config.strategy != "frozen"

    # ----------------------------------------------------------------------------- forward

    def _pooled(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        vectors = pool(self.encoder.pooling, hidden, attention_mask)
        if self.encoder.config.normalize:
            vectors = F.normalize(vectors, p=2.0, dim=-1)
        return vectors

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text vectors with gradients flowing into the trained parameters.

        Args:
            input_ids: ``(batch, tokens)`` token ids, padded on the right.
            attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.

        Returns:
            ``(batch, dim)`` pooled vectors, unit length when the encoder normalises.
        """
        return self.encoder.forward_tensors(input_ids, attention_mask)

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Encode texts with the current weights into a ``(len(texts), dim)`` float32 array.

        Runs in eval mode under ``torch.inference_mode`` with batches of similar token length
        (:meth:`ItemTextEncoder.encode`); every module's train/eval mode is restored after.

        Args:
            texts: The texts; may be empty.
            show_progress: Show a progress bar.
        """
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            return self.encoder.encode(texts, show_progress=show_progress)
        finally:
            for module, training in modes:
                module.training = training

    # ----------------------------------------------------------------------------- top_k

    def _require_top_k(self, method: str) -> LayerStack:
        if self._stack is None:
            raise ConfigError(
                f"strategy: {method} needs strategy 'top_k', not {self.config.strategy!r}"
            )
        return self._stack

    def lower_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The hidden states entering the top ``top_k`` layers, without gradients (``top_k``).

        They do not change while training (nothing below the top layers trains), so they can
        be computed once and fed to :meth:`upper_forward`. The result is made under
        ``torch.no_grad`` rather than ``inference_mode``, so autograd may use it later.

        Args:
            input_ids: ``(batch, tokens)`` token ids, padded on the right.
            attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.

        Returns:
            ``(batch, tokens, width)`` hidden states.

        Raises:
            ConfigError: The strategy is not ``top_k``.
        """
        stack = self._require_top_k("lower_states")
        with torch.no_grad():
            return states_entering(
                self.encoder.model, stack, len(stack) - self.config.top_k, input_ids, attention_mask
            )

    def upper_forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run only the top ``top_k`` layers on :meth:`lower_states` output, then pool.

        ``upper_forward(lower_states(ids, mask), mask)`` equals ``forward(ids, mask)`` up to
        floating-point error.

        Args:
            hidden: ``(batch, tokens, width)`` states entering the top layers.
            attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.

        Returns:
            ``(batch, dim)`` pooled vectors, unit length when the encoder normalises.

        Raises:
            ConfigError: The strategy is not ``top_k``, or the model's layers cannot run alone
                (Llama-style decoders).
        """
        stack = self._require_top_k("upper_forward")
        start = len(stack) - self.config.top_k
        last = run_top_layers(self.encoder.model, stack, start, hidden, attention_mask)
        return self._pooled(last, attention_mask)

    # ----------------------------------------------------------------------------- adalora

    def set_total_steps(self, total_steps: int) -> None:
        """Tell AdaLoRA how many optimizer steps training takes (no-op for other strategies).

        Its rank budget shrinks from ``adalora_init_r`` to ``adalora_target_r`` per module over
        these steps. Call it before training.

        Raises:
            ConfigError: ``total_steps`` is below 1 (AdaLoRA only).
        """
        if self.config.strategy != "adalora":
            return
        if total_steps < 1:
            raise ConfigError(f"total_steps: AdaLoRA needs at least 1 step, got {total_steps}")
        tuner = self.encoder.model.base_model
        tuner.peft_config[tuner.trainable_adapter_name].total_step = int(total_steps)
        self._total_steps = int(total_steps)

    def on_step(self, global_step: int) -> None:
        """AdaLoRA's rank reallocation; call after every optimizer step (no-op otherwise).

        Call it after ``optimizer.step()`` and before the gradients are cleared: importance
        scores use them. A parameter without a gradient this step counts as unimportant.

        Args:
            global_step: Optimizer steps taken so far, starting at 1.

        Raises:
            ConfigError: :meth:`set_total_steps` was not called (AdaLoRA only).
        """
        if self.config.strategy != "adalora":
            return
        if self._total_steps is None:
            raise ConfigError("total_steps: call set_total_steps() before training with AdaLoRA")
        tuner = self.encoder.model.base_model
        peft_config = tuner.peft_config[tuner.trainable_adapter_name]
        if global_step > self._total_steps - peft_config.tfinal and not peft_config.rank_pattern:
            return  # past the budget phase with no ranks pruned here (peft would fail on None)
        missing = [p for p in self.parameters() if p.requires_grad and p.grad is None]
        for param in missing:
            param.grad = torch.zeros_like(param)
        try:
            tuner.update_and_allocate(global_step)
        finally:
            for param in missing:
                param.grad = None

    # ----------------------------------------------------------------------------- state

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Copies of the parameters the strategy trains, keyed by their name in the model.

        Empty for ``frozen``. The names are the same in every process that builds the encoder
        the same way, so the result can be saved and given to
        :meth:`load_trainable_state_dict` of a fresh ``TunableEncoder``.
        """
        return {
            name: param.detach().clone()
            for name, param in self.encoder.model.named_parameters()
            if param.requires_grad
        }

    def load_trainable_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load what :meth:`trainable_state_dict` returned, into an encoder built the same way.

        Args:
            state: Parameter name to tensor; cast to each parameter's device and dtype.

        Raises:
            ModelFileError: Keys are missing or unexpected, or a shape differs (the state comes
                from another strategy, configuration or base model).
        """
        params = {
            name: param
            for name, param in self.encoder.model.named_parameters()
            if param.requires_grad
        }
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ModelFileError(
                f"encoder state does not fit strategy {self.config.strategy!r}: "
                f"missing keys {_listing(missing)}; unexpected keys {_listing(unexpected)}"
            )
        for name, param in params.items():
            if tuple(state[name].shape) != tuple(param.shape):
                raise ModelFileError(
                    f"encoder state: {name} has shape {tuple(state[name].shape)}, "
                    f"the model expects {tuple(param.shape)}"
                )
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state[name].to(device=param.device, dtype=param.dtype))


def _listing(names: list[str], limit: int = 5) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return f"{shown} (+{len(names) - limit} more)" if len(names) > limit else shown


def _lora_targets(model: nn.Module, config: TuningConfig) -> tuple[str, ...]:
    if config.lora_targets is not None:
        return config.lora_targets
    model_type = str(getattr(model.config, "model_type", ""))
    if model_type in _DEFAULT_LORA_TARGETS:
        return _DEFAULT_LORA_TARGETS[model_type]
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

    if model_type in known:
        return tuple(known[model_type])
    raise ConfigError(
        f"lora_targets: no default for model type {model_type!r}; name the attention "
        "projections to adapt"
    )


def _peft_model(model: nn.Module, config: TuningConfig, max_length: int) -> Any:
    """Wrap ``model`` with peft for ``lora``, ``adalora`` or ``prefix`` (in place)."""
    from peft import AdaLoraConfig, LoraConfig, PrefixTuningConfig, TaskType, get_peft_model
    from transformers.pytorch_utils import Conv1D

    peft_config: Any
    if config.strategy == "prefix":
        positions = getattr(model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and max_length + config.prefix_tokens > positions:
            raise ConfigError(
                f"prefix_tokens: {config.prefix_tokens} prefix tokens plus max_length "
                f"{max_length} exceed the {positions} positions of the model"
            )
        peft_config = PrefixTuningConfig(
            num_virtual_tokens=config.prefix_tokens, task_type=TaskType.FEATURE_EXTRACTION
        )
    else:
        targets = _lora_targets(model, config)
        transposed = any(
            isinstance(module, Conv1D)
            for name, module in model.named_modules()
            if any(name == t or name.endswith(f".{t}") for t in targets)
        )
        common: dict[str, Any] = {
            "target_modules": list(targets),
            "lora_alpha": config.lora_alpha,
            "lora_dropout": config.lora_dropout,
            "fan_in_fan_out": transposed,
            "task_type": TaskType.FEATURE_EXTRACTION,
        }
        if config.strategy == "lora":
            peft_config = LoraConfig(r=config.lora_r, **common)
        else:
            peft_config = AdaLoraConfig(
                init_r=config.adalora_init_r,
                target_r=config.adalora_target_r,
                total_step=_PLACEHOLDER_TOTAL_STEPS,
                **common,
            )
    with warnings.catch_warnings():
        # peft reads a property that transformers 5 deprecates; nothing for users to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        try:
            return get_peft_model(model, peft_config)
        except ValueError as exc:
            if config.strategy == "prefix":
                raise ConfigError(f"strategy: peft cannot prefix-tune this model: {exc}") from exc
            raise ConfigError(f"lora_targets: {exc}") from exc
