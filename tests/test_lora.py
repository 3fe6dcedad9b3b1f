"""The pure-PyTorch LoRA: trainable adapters only, identity at init, switchable, and mergeable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from agemem_gym.trainers.lora import LoRALinear, adapters_disabled, apply_lora, lora_state_dict, merge_lora
from agemem_gym.trainers.models import tiny_model

from .grpo_fakes import torch_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not stall when other jobs share the cores."""
    with torch_threads(1):
        yield


def _inputs() -> torch.Tensor:
    return torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))


def _perturb_adapters(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * 0.1)


def test_only_adapters_are_trainable() -> None:
    """After apply_lora every trainable parameter is a lora_A / lora_B, and every target layer is wrapped."""
    model = tiny_model(seed=0)
    wrapped = apply_lora(model, rank=4, alpha=8)
    assert len(wrapped) == 7 * model.config.num_hidden_layers
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(name.endswith(("lora_A", "lora_B")) for name in trainable)
    assert set(lora_state_dict(model)) == set(trainable)


def test_zero_init_adapters_leave_outputs_unchanged() -> None:
    """B = 0 at init, so the wrapped model computes exactly the base model's logits."""
    base = tiny_model(seed=0).eval()
    model = tiny_model(seed=0).eval()
    apply_lora(model, rank=4, alpha=8)
    ids = _inputs()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, base(ids).logits)


def test_disabled_adapters_give_the_base_model() -> None:
    """With trained (non-zero) adapters switched off, the model is the frozen base again: the GRPO reference."""
    base = tiny_model(seed=0).eval()
    model = tiny_model(seed=0).eval()
    apply_lora(model, rank=4, alpha=8)
    _perturb_adapters(model)
    ids = _inputs()
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)
        with adapters_disabled(model):
            assert torch.equal(model(ids).logits, base(ids).logits)
        assert not torch.allclose(model(ids).logits, base(ids).logits)  # switched back on


def test_merge_equals_unmerged_forward() -> None:
    """Folding B·A into W gives the same logits as the adapter forward, with plain nn.Linear layers left."""
    model = tiny_model(seed=0).eval()
    apply_lora(model, rank=4, alpha=8)
    _perturb_adapters(model)
    ids = _inputs()
    with torch.no_grad():
        before = model(ids).logits
        merge_lora(model)
        after = model(ids).logits
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-5)


def test_lora_gradients_reach_only_adapters() -> None:
    """A backward pass leaves base weights without gradients and gives B a gradient at init."""
    model = tiny_model(seed=0)
    apply_lora(model, rank=2, alpha=4)
    model(_inputs()).logits.sum().backward()
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, LoRALinear)
    assert layer.base.weight.grad is None and layer.lora_B.grad is not None and layer.lora_B.grad.abs().sum() > 0


def test_bad_targets_and_rank_raise() -> None:
    """A target list that matches nothing, or a rank below 1, is a programmer error that names the fix."""
    with pytest.raises(ValueError, match=r"matched no nn\.Linear"):
        apply_lora(tiny_model(seed=0), rank=4, alpha=8, targets=("qproj",))
    with pytest.raises(ValueError, match="'rank' must be a positive int, got 0"):
        LoRALinear(nn.Linear(3, 3), rank=0, alpha=1)
