"""Bottleneck adapters (Houlsby et al. 2019) inserted after every transformer layer.

An adapter maps a layer's output ``h`` to ``h + up(gelu(down(h)))``: a projection down to a
narrow bottleneck, a GELU, a projection back up and a residual connection. The up-projection
starts at zero, so a freshly inserted adapter is the identity and the model computes exactly
what it computed before; training then moves only the adapter weights.

Each adapter is registered as a submodule of its layer (named :data:`ADAPTER_NAME`), so it
follows the model through ``.to()``, ``.train()``/``.eval()`` and ``named_parameters()``, and is
applied by a forward hook on that layer, which leaves the layer's own code untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmrec.errors import ConfigError

#: The submodule name each adapter gets inside its transformer layer.
ADAPTER_NAME = "bottleneck_adapter"


class BottleneckAdapter(nn.Module):
    """``h + up(gelu(down(h)))`` with ``up`` initialised at zero.

    Args:
        width: The hidden size of the layer output it adapts.
        bottleneck: The width of the down-projection.
        dtype: Parameter dtype (the model's).
        device: Parameter device (the model's).
    """

    def __init__(
        self,
        width: int,
        bottleneck: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck, dtype=dtype, device=device)
        self.up = nn.Linear(bottleneck, width, dtype=dtype, device=device)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Adapt ``(..., width)`` states; the identity until ``up`` has trained."""
        return hidden + self.up(F.gelu(self.down(hidden)))


def _apply_adapter(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    adapter = getattr(module, ADAPTER_NAME)
    if isinstance(output, tuple):  # layers of older transformers return (hidden, ...)
        return (adapter(output[0]), *output[1:])
    return adapter(output)


def insert_adapters(layers: Iterable[nn.Module], width: int, bottleneck: int) -> None:
    """Give every layer a :class:`BottleneckAdapter` applied to its output, in place.

    Args:
        layers: The transformer layers.
        width: Their hidden size.
        bottleneck: The adapters' bottleneck width.

    Raises:
        ConfigError: A layer already has an adapter (the model was prepared before).
    """
    for layer in layers:
        if hasattr(layer, ADAPTER_NAME):
            raise ConfigError(
                "strategy: the model already has adapters; give TunableEncoder a fresh encoder"
            )
        reference = next(layer.parameters())
        adapter = BottleneckAdapter(
            width, bottleneck, dtype=reference.dtype, device=reference.device
        )
        layer.add_module(ADAPTER_NAME, adapter)
        layer.register_forward_hook(_apply_adapter)
