"""Finding a language model's stack of transformer layers, and running its top layers alone.

Top-k fine-tuning trains only the last k layers of a model. The states entering those layers
do not depend on anything that trains, so they can be computed once without gradients
(:func:`states_entering`) and the top layers rerun on them (:func:`run_top_layers`); pooled,
that gives the same vectors as a full forward pass. The bottleneck adapters of
:mod:`lmrec.text.adapters` hook into the same layers.

Known layouts: BERT-style encoders (``encoder.layer``), GPT-2 (``h`` followed by ``ln_f``) and
Llama-style decoders (``layers`` followed by ``norm``). Only the first two can run their top
layers alone: Llama-style layers also need rotary position embeddings computed by the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmrec.errors import ConfigError
from lmrec.text.pooling import is_decoder_only

# (where the layer list lives, the norm applied after the last layer or None).
_KNOWN_STACKS: tuple[tuple[str, str | None], ...] = (
    ("encoder.layer", None),
    ("h", "ln_f"),
    ("layers", "norm"),
)
# Layouts whose layers run from (hidden states, attention_mask=...) without other inputs.
_RUNNABLE_ALONE = frozenset({"encoder.layer", "h"})


@dataclass(frozen=True)
class LayerStack:
    """The transformer layers of a model and the norm that follows them, if any.

    Attributes:
        path: Where the layer list lives in the model (``"encoder.layer"``, ``"h"``, ...).
        layers: The layers, in order.
        final_norm: The module applied to the last layer's output (GPT-2's ``ln_f``), or None.
    """

    path: str
    layers: nn.ModuleList
    final_norm: nn.Module | None

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def runs_alone(self) -> bool:
        """Whether :func:`run_top_layers` supports this layout."""
        return self.path in _RUNNABLE_ALONE


def _submodule(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def find_layer_stack(model: nn.Module, purpose: str) -> LayerStack:
    """Locate the transformer layers of a Hugging Face base model (``AutoModel``).

    Args:
        model: The model, not wrapped by peft.
        purpose: What needs the layers, for the error message (``"strategy 'top_k'"``).

    Raises:
        ConfigError: The model has none of the known layer layouts.
    """
    for path, norm_path in _KNOWN_STACKS:
        layers = _submodule(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            norm = _submodule(model, norm_path) if norm_path is not None else None
            return LayerStack(path=path, layers=layers, final_norm=norm)
    looked = ", ".join(path for path, _ in _KNOWN_STACKS)
    raise ConfigError(
        f"{purpose} needs the transformer layers of the model, but {type(model).__name__} "
        f"has none of {looked}"
    )


class _Captured(Exception):
    """Raised by a forward pre-hook to stop the model where the wanted states enter a layer."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__("hidden states captured")
        self.hidden = hidden


def _capture_input(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    hidden = args[0] if args else kwargs["hidden_states"]
    raise _Captured(hidden)


def states_entering(
    model: nn.Module,
    stack: LayerStack,
    index: int,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """The hidden states that enter layer ``index``; the layers from ``index`` on do not run.

    The model is called exactly as :meth:`ItemTextEncoder.forward_tensors` calls it (without a
    mask when nothing is padded), so embeddings, dropout and masks are the model's own.

    Args:
        model: The model whose layers ``stack`` holds.
        stack: Its layers.
        index: Which layer's input to return.
        input_ids: ``(batch, tokens)`` token ids, padded on the right.
        attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.

    Returns:
        ``(batch, tokens, width)`` hidden states.
    """
    no_padding = bool(attention_mask.all())
    handle = stack.layers[index].register_forward_pre_hook(_capture_input, with_kwargs=True)
    try:
        model(input_ids=input_ids, attention_mask=None if no_padding else attention_mask)
    except _Captured as captured:
        return captured.hidden
    finally:
        handle.remove()
    raise RuntimeError(f"the model never ran layer {index} of {stack.path}")


def run_top_layers(
    model: nn.Module,
    stack: LayerStack,
    start: int,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Run the layers from ``start`` on (and the final norm) on states entering layer ``start``.

    The attention mask is built the way the model builds it: bidirectional for encoders, causal
    for decoder-only models, omitted when nothing is padded.

    Args:
        model: The model whose layers ``stack`` holds (its config picks the mask).
        stack: Its layers; ``stack.runs_alone`` must be true.
        start: The first layer to run.
        hidden: ``(batch, tokens, width)`` states entering layer ``start``.
        attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.

    Returns:
        ``(batch, tokens, width)`` last hidden states, as the full model returns them.
    """
    from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

    if not stack.runs_alone:
        raise ConfigError(
            f"strategy: running the top layers alone is supported for BERT-style and GPT-2 "
            f"models, not for {type(model).__name__} (layers at {stack.path!r})"
        )
    config = model.config
    mask = None if bool(attention_mask.all()) else attention_mask
    extra: dict[str, torch.Tensor] = {}
    if is_decoder_only(config):
        position_ids = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        layer_mask = create_causal_mask(
            config=config,
            inputs_embeds=hidden,
            attention_mask=mask,
            cache=None,
            position_ids=position_ids,
        )
        extra["position_ids"] = position_ids
    else:
        layer_mask = create_bidirectional_mask(
            config=config, inputs_embeds=hidden, attention_mask=mask
        )
    for layer in stack.layers[start:]:
        output = layer(hidden, attention_mask=layer_mask, **extra)
        hidden = output[0] if isinstance(output, tuple) else output
    if stack.final_norm is not None:
        hidden = stack.final_norm(hidden)
    return hidden
