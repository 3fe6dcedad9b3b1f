"""Pure-PyTorch LoRA (Hu et al., 2021, arXiv 2106.09685): low-rank adapters on chosen ``nn.Linear`` layers.

``y = W x + (alpha / r) · B A x`` with ``A`` (r, in) Kaiming-initialised and ``B`` (out, r) zero-initialised, so a
freshly wrapped model computes exactly what the base model computes. Only ``A`` and ``B`` train.

Two uses beyond memory savings:

- the GRPO reference policy is the base model, i.e. the same module with its adapters switched off
  (:func:`adapters_disabled`), so no second copy of the weights is kept;
- :func:`merge_lora` folds ``B A`` into ``W`` and restores plain ``nn.Linear`` layers, for export with
  ``save_pretrained``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from agemem_gym._validate import check

__all__ = [
    "DEFAULT_TARGETS",
    "LoRALinear",
    "adapters_disabled",
    "apply_lora",
    "lora_state_dict",
    "merge_lora",
]

# The attention and MLP projections of Llama / Qwen2 / Mistral-style decoders.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRALinear(nn.Module):
    """An ``nn.Linear`` plus a trainable low-rank update; the base layer is frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        check("rank", rank, "int", gt=0)  # a ConfigError, which is a ValueError
        self.base = base
        self.base.requires_grad_(False)
        self.scaling = alpha / rank
        self.enabled = True
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # Adapters are kept in fp32 even when the base is bf16: they are small and Adam updates them.
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init; B = 0 makes BA = 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        if not self.enabled:
            return out
        h = self.dropout(x).to(self.lora_A.dtype) @ self.lora_A.T  # (..., r)
        return out + (h @ self.lora_B.T * self.scaling).to(out.dtype)  # (..., out)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is ``W + scaling · B A`` (in the base layer's dtype)."""
        layer = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        with torch.no_grad():
            delta = (self.lora_B @ self.lora_A) * self.scaling  # (out, in)
            layer.weight.copy_(self.base.weight.float() + delta)
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        return layer


def apply_lora(
    model: nn.Module,
    *,
    rank: int,
    alpha: float,
    dropout: float = 0.0,
    targets: Sequence[str] = DEFAULT_TARGETS,
) -> list[str]:
    """Wrap every ``nn.Linear`` whose attribute name is in ``targets``; freeze everything else.

    Returns the qualified names of the wrapped layers; raises when none matched (a typo in ``targets``).
    """
    model.requires_grad_(False)
    wrapped: list[str] = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in targets and isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, rank, alpha, dropout))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError(
            f"LoRA 'targets' {tuple(targets)} matched no nn.Linear in {type(model).__name__}; "
            "pass the attribute names of its projection layers (e.g. q_proj, v_proj)"
        )
    return wrapped


def _lora_layers(model: nn.Module) -> Iterator[LoRALinear]:
    return (m for m in model.modules() if isinstance(m, LoRALinear))


@contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside this block the model computes its base (reference) policy: every adapter is switched off."""
    layers = list(_lora_layers(model))
    for layer in layers:
        layer.enabled = False
    try:
        yield model
    finally:
        for layer in layers:
            layer.enabled = True


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapter weights only (what a LoRA checkpoint needs next to the base model's name)."""
    return {k: v for k, v in model.state_dict().items() if "lora_A" in k or "lora_B" in k}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` by its merged ``nn.Linear`` in place; returns the model."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
    return model
