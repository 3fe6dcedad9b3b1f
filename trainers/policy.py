"""The policy side of the trainer: chat prompts, batched sampling with a KV cache, and response log-probs.

Layout convention used everywhere here: a batch of token lists is **left-padded** to a common length, so that every
row ends at the same column. Generation needs this (the next token of every row is appended at the same column) and
training uses it too: the response of every row then occupies the *last* columns, so the model only has to project
the last ``R + 1`` hidden states onto the vocabulary (``logits_to_keep``) instead of all of them. Position ids are
counted from each row's first real token, so padding never shifts positions.

Log-probs are those of the temperature-scaled policy, ``log softmax(logits / T)``, in the rollout and in training
alike; top-p only truncates what is sampled (as in TRL and verl), it is not part of the optimised policy.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from agemem_gym._validate import check_field
from agemem_gym.chat import encode_chat  # re-exported: the core's one chat encoder builds every rollout prompt
from agemem_gym.errors import ConfigError

__all__ = [
    "Sampling",
    "Turn",
    "encode_chat",
    "generate",
    "left_pad",
    "response_logprobs",
    "token_logprobs",
    "top_p_filter",
]

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class Sampling:
    """How one agent turn is generated."""

    temperature: float = 1.0
    """softmax temperature (log-probs for training use the same temperature)"""
    top_p: float = 1.0
    """nucleus sampling mass; 1.0 keeps the whole distribution"""
    max_new_tokens: int = 128
    """the most tokens one turn may generate"""
    greedy: bool = False
    """argmax decoding instead of sampling (for evaluation)"""
    stop_strings: tuple[str, ...] = ("</tool_call>", "</answer>")
    """a turn ends once its text contains one of these (the closing tag is kept in the response)"""

    def __post_init__(self) -> None:
        check_field(self, "temperature", "number", gt=0, finite=True)  # log-probs divide by it, greedy or not
        check_field(self, "top_p", "number", gt=0, le=1)
        check_field(self, "max_new_tokens", "int", gt=0)
        check_field(self, "greedy", "bool")
        stops = self.stop_strings
        # An empty string would stop every turn after its first token ("" is in any text).
        if isinstance(stops, str) or not all(isinstance(s, str) and s for s in stops):
            raise ConfigError(
                f"'stop_strings' must be a tuple of non-empty str, got {stops!r:.80}; e.g. ('</tool_call>', '</answer>')"
            )


@dataclass
class Turn:
    """One generated agent turn: the exact ids the model saw and produced, and their log-probs at sampling time."""

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    text: str
    finish: FinishReason


def left_pad(
    seqs: Sequence[Sequence[float]],
    pad_value: float,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.long,
) -> tuple[Tensor, Tensor]:
    """Left-pad lists (token ids, or log-probs with a float ``dtype``) into ``values`` and ``mask``, both (N, L)."""
    length = max(len(s) for s in seqs)
    values = torch.full((len(seqs), length), pad_value, dtype=dtype)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            values[i, length - len(s) :] = torch.as_tensor(s, dtype=dtype)
            mask[i, length - len(s) :] = 1
    return values.to(device), mask.to(device)


def token_logprobs(logits: Tensor, ids: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-probability of each ``ids`` token under ``softmax(logits / temperature)``: (..., V), (...) -> (...)."""
    logits = logits.float() / temperature  # fp32 even under bf16 autocast: log-probs feed exp() in the ratio
    picked = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    # log softmax(x)[i] = x[i] - logsumexp(x): avoids materialising a second (..., V) tensor.
    return picked - logits.logsumexp(-1)


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Set to -inf the logits outside the smallest set whose probability reaches ``top_p`` (Holtzman et al., 2020)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
    probs = sorted_logits.softmax(-1)
    # Drop a token when the mass *before* it already reaches top_p; the most likely token is always kept.
    drop = (probs.cumsum(-1) - probs) >= top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _eos_ids(model: nn.Module, tokenizer: Any) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif config_eos:
        ids.update(config_eos)
    return ids


def _kv_cache(out: Any) -> Any:
    """The KV cache a forward pass returned (``cache`` in transformers 5, ``past_key_values`` before)."""
    return out["cache"] if "cache" in out else out["past_key_values"]


def _hits_stop(tokenizer: Any, response: list[int], stop_strings: tuple[str, ...], window: int) -> bool:
    # A stop string of S characters spans at most S tokens (each token decodes to at least one character), so
    # decoding the last `window` tokens each step finds it at the first step where it is complete.
    tail = tokenizer.decode(response[-window:], skip_special_tokens=False)
    return any(s in tail for s in stop_strings)


@torch.no_grad()
def generate(model: nn.Module, tokenizer: Any, prompts: Sequence[list[int]], sampling: Sampling) -> list[Turn]:
    """Generate one turn for each prompt, batched (left padding) with a KV cache; finished rows leave the batch.

    Runs under whatever autocast context the caller set. Sampling draws from the global torch RNG of the model's
    device, so seeding torch (and saving its state) makes rollouts reproducible.
    """
    device = next(model.parameters()).device
    eos = _eos_ids(model, tokenizer)
    # transformers 5 renamed the KV cache argument ``past_key_values`` to ``cache`` (the old name warns, then goes).
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    window = max((len(s) for s in sampling.stop_strings), default=0)
    n = len(prompts)
    responses: list[list[int]] = [[] for _ in range(n)]
    logprobs: list[list[float]] = [[] for _ in range(n)]
    finish: list[FinishReason] = ["length"] * n

    ids, mask = left_pad(prompts, tokenizer.pad_token_id, device)  # (N, P)
    position = (mask.cumsum(-1) - 1).clamp(min=0)  # (N, P): positions count real tokens only
    alive = list(range(n))  # original row of each row still in the batch (and in the cache)
    out = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, logits_to_keep=1)
    for step in range(sampling.max_new_tokens):
        scaled = out.logits[:, -1].float() / sampling.temperature  # (A, V)
        if sampling.greedy:
            token = scaled.argmax(-1)  # (A,)
        else:
            probs = top_p_filter(scaled, sampling.top_p).softmax(-1)
            token = torch.multinomial(probs, 1).squeeze(-1)  # (A,)
        logp = token_logprobs(scaled, token)  # (A,), under the untruncated softmax(logits / T)

        keep: list[int] = []
        for j, (row, t, lp) in enumerate(zip(alive, token.tolist(), logp.tolist())):
            responses[row].append(t)
            logprobs[row].append(lp)
            if t in eos:
                finish[row] = "eos"
            elif window and _hits_stop(tokenizer, responses[row], sampling.stop_strings, window):
                finish[row] = "stop"
            else:
                keep.append(j)
        if not keep or step == sampling.max_new_tokens - 1:
            break
        cache = _kv_cache(out)
        if len(keep) < len(alive):  # drop finished rows from the batch and the cache
            index = torch.as_tensor(keep, device=device)
            cache.batch_select_indices(index)
            alive = [alive[j] for j in keep]
            mask, position, token = mask[index], position[index], token[index]
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)  # (A, L + 1)
        position = position[:, -1:] + 1  # (A, 1)
        out = model(
            input_ids=token.unsqueeze(-1),
            attention_mask=mask,
            position_ids=position,
            use_cache=True,
            **{cache_arg: cache},
        )
    return [
        Turn(list(p), r, lp, tokenizer.decode(r, skip_special_tokens=True), f)
        for p, r, lp, f in zip(prompts, responses, logprobs, finish)
    ]


def response_logprobs(
    model: nn.Module,
    prompts: Sequence[list[int]],
    responses: Sequence[list[int]],
    pad_id: int,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Log-probs of each response given its prompt, in one forward pass: returns ``logp`` and ``mask``, both (N, R).

    Rows are left-padded like in :func:`generate`, so responses are right-aligned: row i's response fills the last
    ``len(responses[i])`` of the R columns (R = the longest response) and ``mask`` is 1 there.
    """
    device = next(model.parameters()).device
    ids, mask = left_pad([p + r for p, r in zip(prompts, responses)], pad_id, device)  # (N, L)
    position = (mask.cumsum(-1) - 1).clamp(min=0)  # (N, L)
    longest = max(len(r) for r in responses)
    # Only the last R + 1 positions are projected to the vocabulary; the last one predicts past the end.
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=position, use_cache=False, logits_to_keep=longest + 1
    ).logits[:, :-1]  # (N, R, V)
    targets, target_mask = left_pad(responses, pad_id, device)  # (N, R)
    return token_logprobs(logits, targets, temperature), target_mask
