"""The step-wise GRPO objective as pure tensor functions (paper §3.4): group advantages (Eq. 5), the per-sample
weights of the batch mean, the clipped-ratio loss with a k3 KL penalty (Eq. 6), and the micro-batch layout the
update runs over.

Nothing here touches a process group, a model or an env: each function is a value in, a value out, tested against
hand-computed values and naive loops (``tests/test_grpo_math.py``). Under ``torchrun`` the caller supplies the one
global figure a rank cannot know alone (the batch mean's count summed over ranks, see :func:`make_micro_batches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from agemem_gym.trainers.policy import left_pad
from agemem_gym.trainers.rollouts import Step

__all__ = [
    "LossAverage",
    "MicroBatch",
    "group_advantages",
    "grpo_loss",
    "kl_k3",
    "make_micro_batches",
    "masked_mean",
    "mean_count",
    "token_weights",
]

LossAverage = Literal["trajectory", "token", "step"]
"""How the token losses of a batch are averaged (see :func:`token_weights`)."""


def group_advantages(
    rewards: Tensor, eps: float = 1e-6, std: Literal["sample", "population"] = "sample"
) -> tuple[Tensor, Tensor]:
    """Group-normalised advantages (paper Eq. 5): ``rewards`` (G, K) -> ``A`` (G, K) and ``zero_spread`` (G,).

    ``A = (r - mean) / (std + eps)`` within each group of K trajectories of one task. ``std="sample"`` (default)
    is the Bessel-corrected std (divides by K - 1), as the paper's Alg. 2 computes it; ``"population"`` divides by
    K. A group whose rewards are all equal carries no signal: its advantages are set to exactly 0 (rather than
    rounding noise over eps) and it is flagged in ``zero_spread``. A group of one is such a group: it has no
    spread, so its advantage is 0 under either std, never NaN (the sample std of one value is 0/0).

    Raises:
        ValueError: ``std`` is neither ``"sample"`` nor ``"population"``.
    """
    if std not in ("sample", "population"):
        raise ValueError(f"'adv_std' must be 'sample' or 'population', got {std!r}")
    k = rewards.shape[1]
    # K - 1 degrees of freedom for the sample std; clamped to 1 so that a group of one divides 0 by 1, not by 0.
    dof = max(k - 1, 1) if std == "sample" else k
    mean = rewards.mean(dim=1, keepdim=True)  # (G, 1)
    spread = (rewards - mean).pow(2).sum(dim=1, keepdim=True).div(dof).sqrt()  # (G, 1)
    zero_spread = rewards.amax(dim=1) == rewards.amin(dim=1)  # (G,)
    adv = (rewards - mean) / (spread + eps)
    return adv.masked_fill(zero_spread.unsqueeze(1), 0.0), zero_spread


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is 1 (over ``dim``, or everything); 0 where the mask is empty."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token KL(π_θ || π_ref) estimate k3 = exp(ref − logp) − (ref − logp) − 1 (Schulman, 2020): ≥ 0, unbiased."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


def token_weights(traj_index: Tensor, n_tokens: Tensor, mode: LossAverage) -> Tensor:
    """Per-sample weight w such that ``Σ_i w_i Σ_t ℓ_it`` is the chosen mean of the token losses ℓ: (N,) -> (N,).

    ``traj_index`` (N,) names the trajectory of each sample (one agent turn, a step) and ``n_tokens`` (N,) its
    response length. The three means:

    - ``"trajectory"``: mean over each trajectory's tokens, then mean over trajectories, so long trajectories do
      not dominate (DESIGN §8): ``w_i = 1 / (n_tokens of i's trajectory · number of trajectories)``.
    - ``"token"``: one mean over every token of the batch (as in DAPO): ``w_i = 1 / total tokens``.
    - ``"step"``: the paper's Eq. 6, ``1/|E| Σ_e 1/|e| Σ_t``: mean over each step's tokens, then mean over all
      steps of the batch: ``w_i = 1 / (n_tokens_i · N)``, so every turn counts alike whatever its length.

    The weights are computed once per batch, so summing micro-batch losses gives exactly the full-batch loss.

    Raises:
        ValueError: ``mode`` is not one of the three.
    """
    n_tokens = n_tokens.to(torch.float64)
    if mode == "token":
        return torch.full_like(n_tokens, 1.0 / n_tokens.sum().item())
    if mode == "step":
        # clamp: an empty response has no unmasked token, so its weight multiplies nothing (and stays finite).
        return 1.0 / (n_tokens.clamp(min=1) * len(n_tokens))
    if mode != "trajectory":
        raise ValueError(f"'loss_average' must be 'trajectory', 'token' or 'step', got {mode!r}")
    _, inverse = torch.unique(traj_index, return_inverse=True)  # (N,) trajectory ids made contiguous
    n_traj = int(inverse.max()) + 1
    per_traj = torch.zeros(n_traj, dtype=torch.float64).index_add_(0, inverse, n_tokens)  # tokens per trajectory
    return 1.0 / (per_traj[inverse] * n_traj)


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    weights: Tensor,
    *,
    clip_eps: float = 0.2,
    beta: float = 0.1,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The step-wise GRPO loss (paper Eq. 6) of one micro-batch, and its parts (detached, same weighting).

    Shapes: ``logp``, ``old_logp``, ``ref_logp``, ``mask``: (N, T); ``advantages``, ``weights``: (N,).
    Per token: ``−min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) + β·k3`` with ``ρ = π_θ / π_old``; summed with ``weights``
    (from :func:`token_weights`) over the mask. ``ref_logp=None`` drops the KL term.
    """
    # Padding positions hold arbitrary log-probs; zero them *before* exp() so that no inf (and then 0·inf = NaN in
    # the forward or backward pass) can appear where the mask is 0.
    valid = mask.bool()
    logp = torch.where(valid, logp, 0.0)
    ratio = torch.exp(logp - torch.where(valid, old_logp, 0.0))  # (N, T)
    adv = advantages.unsqueeze(1)  # (N, 1): one advantage for every token of the turn
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    policy = -torch.min(unclipped, clipped)  # (N, T) Eq. 6, clipped surrogate (PPO, Schulman et al., 2017)
    # (N, T) Eq. 6, KL penalty to the frozen reference
    kl = kl_k3(logp, torch.where(valid, ref_logp, 0.0)) if ref_logp is not None else torch.zeros_like(logp)
    w = weights.to(logp.dtype).unsqueeze(1) * mask.to(logp.dtype)  # (N, T)
    loss = ((policy + beta * kl) * w).sum()
    with torch.no_grad():
        clip_active = (clipped < unclipped).to(logp.dtype)  # the min picked the clipped term
        stats = {
            "policy": (policy * w).sum(),
            "kl": (kl * w).sum(),
            "clip_frac": (clip_active * w).sum(),
            "ratio": (ratio * w).sum(),
        }
    return loss, stats


@dataclass
class MicroBatch:
    """Tensors of a few samples, right-aligned like :func:`~agemem_gym.trainers.policy.response_logprobs` output."""

    prompts: list[list[int]]
    responses: list[list[int]]
    old_logp: Tensor  # (N, R)
    advantages: Tensor  # (N,)
    weights: Tensor  # (N,)
    ref_logp: Tensor | None = None  # (N, R)

    @property
    def tokens(self) -> int:
        return sum(len(p) + len(r) for p, r in zip(self.prompts, self.responses))


def mean_count(samples: Sequence[tuple[Step, float, int]], loss_average: LossAverage) -> float:
    """What the batch mean of ``loss_average`` divides by, for these (step, advantage, trajectory index) samples:
    their trajectories, response tokens or steps (0 for no samples)."""
    if loss_average == "trajectory":
        return float(len({j for _, _, j in samples}))
    if loss_average == "token":
        return float(sum(len(step.response_ids) for step, _, _ in samples))
    return float(len(samples))


def make_micro_batches(
    samples: Sequence[tuple[Step, float, int]],
    *,
    fallback: Step,
    size: int,
    loss_average: LossAverage,
    device: torch.device,
    world_size: int = 1,
    global_count: float | None = None,
) -> list[MicroBatch]:
    """Micro-batches of (step, advantage, trajectory index) samples, with their loss weights for the whole batch.

    Samples are sorted by length so that each micro-batch wastes little padding (the loss is a weighted sum, so
    order is free). With no samples (every group skipped), ``fallback`` forms one micro-batch at weight 0, so that
    this rank still runs a backward pass and DDP's gradient all-reduce stays in step.

    One of ``world_size`` ranks (DDP averages gradients over them): pass ``global_count``, the sum over ranks of
    each rank's :func:`mean_count`. The weights are then rescaled so that the ranks' average is one mean over the
    global batch, not a mean of per-rank means. A pure function either way: the caller does the all-reduce.

    Raises:
        ValueError: ``world_size > 1`` without ``global_count``.
    """
    if world_size > 1 and global_count is None:
        raise ValueError(
            f"'global_count' is needed with world_size={world_size}: pass the sum over ranks of mean_count(samples)"
        )
    scale = 1.0 if samples else 0.0
    local = mean_count(samples, loss_average)
    samples = samples or [(fallback, 0.0, 0)]
    n_tokens = torch.tensor([len(step.response_ids) for step, _, _ in samples])
    weights = scale * token_weights(torch.tensor([j for _, _, j in samples]), n_tokens, loss_average)  # (N,)
    if world_size > 1 and global_count is not None:
        # Each rank's weights divide by its own count (trajectories, tokens or steps); times world_size · local /
        # global, the average DDP takes over ranks divides by the global count instead.
        weights = weights * world_size * local / max(global_count, 1.0)
    order = sorted(range(len(samples)), key=lambda i: len(samples[i][0].prompt_ids) + len(samples[i][0].response_ids))
    batches = []
    for start in range(0, len(order), size):
        idx = order[start : start + size]
        steps = [samples[i][0] for i in idx]
        old_logp, _ = left_pad([s.logprobs for s in steps], 0.0, device, dtype=torch.float32)  # (N, R)
        batches.append(
            MicroBatch(
                prompts=[s.prompt_ids for s in steps],
                responses=[s.response_ids for s in steps],
                old_logp=old_logp,
                advantages=torch.tensor([samples[i][1] for i in idx], dtype=torch.float32, device=device),
                weights=weights[idx].to(device),
            )
        )
    return batches
