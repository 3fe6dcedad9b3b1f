"""The trainer's pure tensor functions against hand-computed values and naive loops."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from agemem_gym.trainers.grpo_math import (
    group_advantages,
    grpo_loss,
    kl_k3,
    make_micro_batches,
    masked_mean,
    token_weights,
)
from agemem_gym.trainers.policy import token_logprobs
from agemem_gym.trainers.rollouts import Step


def test_group_advantages_hand_values() -> None:
    """A = (r - mean) / (std + eps) per group, with the sample std (K - 1) by default and the population std (K)
    on request."""
    rewards = torch.tensor([[0.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    adv, zero = group_advantages(rewards, eps=0.0)
    half = 1 / math.sqrt(2)  # sample std of {0, 1} is sqrt(0.5): A = ±0.5 / sqrt(0.5)
    assert torch.allclose(adv, torch.tensor([[-half, half], [-half, half]], dtype=torch.float64), rtol=1e-15)
    assert not zero.any()
    adv, _ = group_advantages(rewards, eps=0.0, std="population")
    assert torch.equal(adv, torch.tensor([[-1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64))

    one_to_four = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    centred = torch.tensor([[-1.5, -0.5, 0.5, 1.5]], dtype=torch.float64)
    adv, _ = group_advantages(one_to_four, eps=0.0)
    assert torch.allclose(adv, centred / math.sqrt(5 / 3))  # sample std of 1..4: sqrt(5 / 3)
    adv, _ = group_advantages(one_to_four, eps=0.0, std="population")
    assert torch.allclose(adv, centred / math.sqrt(1.25))  # population std of 1..4: sqrt(1.25)
    with pytest.raises(ValueError, match="'adv_std' must be 'sample' or 'population', got 'biased'"):
        group_advantages(one_to_four, std="biased")  # type: ignore[arg-type]


@pytest.mark.parametrize(("std", "dof"), [("sample", 1), ("population", 0)])
def test_group_advantages_matches_naive_loop(std: str, dof: int) -> None:
    """Random groups give what a per-group Python loop gives (sample: divide by K - 1; population: by K)."""
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    adv, _ = group_advantages(rewards, eps=1e-6, std=std)  # type: ignore[arg-type]
    for g in range(5):
        row = rewards[g].tolist()
        mean = sum(row) / len(row)
        sd = math.sqrt(sum((r - mean) ** 2 for r in row) / (len(row) - dof))
        for k in range(6):
            assert adv[g, k].item() == pytest.approx((row[k] - mean) / (sd + 1e-6), rel=1e-12)


@pytest.mark.parametrize("std", ["sample", "population"])
def test_zero_spread_and_single_member_groups_get_exactly_zero(std: str) -> None:
    """Groups whose rewards are all equal (including groups of one) get advantage exactly 0 and are flagged; a
    group of one has no spread under either std (never NaN, no degrees-of-freedom warning)."""
    rewards = torch.tensor([[0.1, 0.1, 0.1], [0.0, 1.0, 0.0], [-1.0, -1.0, -1.0]], dtype=torch.float64)
    adv, zero = group_advantages(rewards, std=std)  # type: ignore[arg-type]
    assert zero.tolist() == [True, False, True]
    assert torch.equal(adv[0], torch.zeros(3, dtype=torch.float64))  # not rounding noise / eps
    assert torch.equal(adv[2], torch.zeros(3, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single, zero1 = group_advantages(torch.tensor([[3.0], [5.0]]), std=std)  # type: ignore[arg-type]
    assert torch.equal(single, torch.zeros(2, 1)) and zero1.all()


def test_token_logprobs_matches_naive_loop() -> None:
    """Log-probs of chosen ids under softmax(logits / T) equal a per-element computation."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 11, generator=gen)
    ids = torch.randint(0, 11, (3, 4), generator=gen)
    got = token_logprobs(logits, ids, temperature=0.7)
    for n in range(3):
        for t in range(4):
            probs = torch.softmax(logits[n, t].double() / 0.7, dim=-1)
            assert got[n, t].item() == pytest.approx(math.log(probs[ids[n, t]].item()), abs=1e-5)


def test_masked_mean() -> None:
    """Masked means over everything and over a dim; an empty mask gives 0, not NaN."""
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 1]])
    assert masked_mean(x, mask).item() == pytest.approx(3.0)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 6.0])
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0


def test_kl_k3_nonnegative_zero_at_equality_and_hand_value() -> None:
    """k3 = exp(r) - r - 1 with r = ref - logp: >= 0, 0 when the policies match, e.g. 0.5 + ln 2 - 1 for p = 2·ref."""
    gen = torch.Generator().manual_seed(2)
    logp, ref = torch.randn(1000, generator=gen), torch.randn(1000, generator=gen)
    assert (kl_k3(logp, ref) >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros(1000))
    value = kl_k3(torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25)))
    assert value.item() == pytest.approx(0.5 + math.log(2) - 1)


def test_k3_is_an_unbiased_kl_estimate() -> None:
    """Averaged over samples from π_θ, k3 recovers KL(π_θ || π_ref) of two small categoricals."""
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    exact = (p * (p / q).log()).sum()
    estimate = (p * kl_k3(p.log(), q.log())).sum()  # expectation under p, computed exactly
    assert estimate.item() == pytest.approx(exact.item(), rel=1e-12)


def _one_token(ratio: float, adv: float, clip: float = 0.2) -> tuple[float, float, float]:
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, stats = grpo_loss(
        logp, torch.zeros(1, 1), None, torch.tensor([adv]), torch.ones(1, 1), torch.ones(1), clip_eps=clip, beta=0.0
    )
    loss.backward()
    assert logp.grad is not None
    return loss.item(), logp.grad.item(), stats["clip_frac"].item()


@pytest.mark.parametrize(
    ("ratio", "adv", "loss", "clipped"),
    [
        (1.5, 1.0, -1.2, True),  # A > 0, ratio above 1 + eps: clipped, no gradient
        (0.5, 1.0, -0.5, False),  # A > 0, ratio below 1 - eps: unclipped (pessimistic min)
        (0.5, -1.0, 0.8, True),  # A < 0, ratio below 1 - eps: clipped, no gradient
        (1.5, -1.0, 1.5, False),  # A < 0, ratio above 1 + eps: unclipped
        (1.1, 2.0, -2.2, False),  # inside the trust region
    ],
)
def test_grpo_loss_clipping_regions(ratio: float, adv: float, loss: float, clipped: bool) -> None:
    """The clipped surrogate of Eq. 6 takes the pessimistic branch, and clipped tokens pass no gradient."""
    value, grad, clip_frac = _one_token(ratio, adv)
    assert value == pytest.approx(loss, rel=1e-6)
    assert clip_frac == float(clipped)
    if clipped:
        assert grad == 0.0
    else:
        assert grad == pytest.approx(-ratio * adv, rel=1e-6)  # d(-ρA)/d logp = -ρA


def test_grpo_loss_kl_term_and_mask() -> None:
    """With ratio 1 and A = 0 the loss is β·mean k3 over unmasked tokens; masked tokens contribute nothing."""
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.9]]))
    ref = torch.log(torch.tensor([[0.25, 0.5, 0.1]]))
    mask = torch.tensor([[1, 1, 0]])
    loss, stats = grpo_loss(logp, logp, ref, torch.zeros(1), mask, torch.tensor([0.5]), beta=0.1)
    k3 = 0.5 + math.log(2) - 1
    assert stats["kl"].item() == pytest.approx(k3 / 2)
    assert loss.item() == pytest.approx(0.1 * k3 / 2)
    same, same_stats = grpo_loss(logp, logp, logp, torch.zeros(1), mask, torch.tensor([0.5]), beta=0.1)
    assert same.item() == 0.0 and same_stats["kl"].item() == 0.0


def test_padding_with_extreme_logprobs_stays_finite() -> None:
    """Masked positions may hold any log-prob (here -1e4 against 0): loss and gradient stay finite and ignore them."""
    logp = torch.tensor([[-1e4, -0.5]], requires_grad=True)
    old, ref, mask = torch.tensor([[0.0, -0.6]]), torch.tensor([[0.0, -0.4]]), torch.tensor([[0, 1]])
    loss, _ = grpo_loss(logp, old, ref, torch.tensor([1.0]), mask, torch.ones(1), beta=0.1)
    loss.backward()
    assert logp.grad is not None and torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert logp.grad[0, 0] == 0.0
    only, _ = grpo_loss(logp[:, 1:], old[:, 1:], ref[:, 1:], torch.tensor([1.0]), mask[:, 1:], torch.ones(1), beta=0.1)
    assert loss.item() == pytest.approx(only.item())


def test_trajectory_token_and_step_averaging_hand_example() -> None:
    """Trajectory mode averages each trajectory's tokens first; token mode pools every token of the batch; step mode
    (Eq. 6) averages each step's tokens, then the steps."""
    # Trajectory 0: one turn with token losses [1, 3]. Trajectory 1: two turns, [5] and [7, 9, 11].
    per_token = torch.tensor([[0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 5.0], [0.0, 7.0, 9.0, 11.0]])
    mask = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1], [0, 1, 1, 1]])
    traj, n_tokens = torch.tensor([0, 1, 1]), mask.sum(1)
    # A = -1 and ratio 1 make the policy term of each token equal to exp(logp - old) = the chosen value.
    logp = per_token.log().nan_to_num(neginf=0.0)

    def loss(mode: str) -> float:
        w = token_weights(traj, n_tokens, mode)  # type: ignore[arg-type]
        value, _ = grpo_loss(logp, torch.zeros_like(logp), None, -torch.ones(3), mask, w, clip_eps=100.0, beta=0.0)
        return value.item()

    assert loss("trajectory") == pytest.approx(((1 + 3) / 2 + (5 + 7 + 9 + 11) / 4) / 2)  # (2 + 8) / 2 = 5
    assert loss("token") == pytest.approx((1 + 3 + 5 + 7 + 9 + 11) / 6)  # 6
    assert loss("step") == pytest.approx(((1 + 3) / 2 + 5 / 1 + (7 + 9 + 11) / 3) / 3)  # (2 + 5 + 9) / 3 = 16/3
    with pytest.raises(ValueError, match="loss_average"):
        token_weights(traj, n_tokens, "sequence")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["trajectory", "token", "step"])
def test_micro_batch_losses_sum_to_the_full_batch_loss(mode: str) -> None:
    """Splitting a batch into micro-batches (weights computed once) sums to the full-batch loss and gradient."""
    gen = torch.Generator().manual_seed(3)
    n, t = 6, 5
    logp = (torch.randn(n, t, generator=gen) * 0.1 - 1).requires_grad_()
    old, ref = logp.detach() + 0.05 * torch.randn(n, t, generator=gen), logp.detach() - 0.1
    adv, mask = torch.randn(n, generator=gen), (torch.rand(n, t, generator=gen) > 0.3).long()
    mask[:, -1] = 1
    w = token_weights(torch.tensor([0, 0, 1, 2, 2, 2]), mask.sum(1), mode).float()  # type: ignore[arg-type]
    full, _ = grpo_loss(logp, old, ref, adv, mask, w)
    (full_grad,) = torch.autograd.grad(full, logp)
    parts = [
        grpo_loss(logp[s], old[s], ref[s], adv[s], mask[s], w[s])[0] for s in (slice(0, 2), slice(2, 3), slice(3, 6))
    ]
    total = sum(parts)
    (part_grad,) = torch.autograd.grad(total, logp)
    assert float(total.detach()) == pytest.approx(full.item(), rel=1e-6)
    assert torch.allclose(part_grad, full_grad, atol=1e-7)


@pytest.mark.parametrize("mode", ["trajectory", "token", "step"])
def test_make_micro_batches_weights_form_one_mean_over_the_batch(mode: str) -> None:
    """Across its micro-batches, make_micro_batches gives each sample the weight token_weights gives it on the whole
    batch, so each mean's weights over the batch's tokens add up to 1."""
    lengths, trajectory = [3, 1, 4, 1, 5, 2], [0, 0, 1, 2, 2, 2]
    samples = [(Step([7] * (i + 1), [1] * n, [-0.5] * n), 0.5, j) for i, (n, j) in enumerate(zip(lengths, trajectory))]
    batches = make_micro_batches(samples, fallback=samples[0][0], size=4, loss_average=mode, device=torch.device("cpu"))  # type: ignore[arg-type]
    assert [len(mb.prompts) for mb in batches] == [4, 2]
    expected = token_weights(torch.tensor(trajectory), torch.tensor(lengths), mode)  # type: ignore[arg-type]
    got = {tuple(p): float(w) for mb in batches for p, w in zip(mb.prompts, mb.weights)}
    assert [got[tuple(s.prompt_ids)] for s, _, _ in samples] == pytest.approx(expected.tolist(), rel=1e-12)
    assert sum(w * n for w, n in zip(expected.tolist(), lengths)) == pytest.approx(1.0)
    if mode == "step":  # every step weighs 1/N whatever its length
        assert [w * n for w, n in zip(expected.tolist(), lengths)] == pytest.approx([1 / 6] * 6)
