"""Copy pretraining for a tiny random model: grow induction heads on repeated random sequences before SFT.

A randomly initialised 2-layer model does not learn, from a few hundred SFT steps on long chat turns, to copy a
name it has never seen from its context into its reply (see :mod:`agemem_gym.trainers.learning_demo`). Olsson et
al. (2022, "In-context learning and induction heads") show that a 2-layer attention model learns the copy rule
``[A][B] ... [A] -> [B]`` ("induction heads": a previous-token head in layer 1 composed with a matching head in
layer 2) in an abrupt phase change when trained on text that repeats itself. This module trains exactly that, on
short sequences that are cheap on a CPU:

1. :func:`repeated_sequence`: ``x1 ... xL SEP x1 ... xL`` with the ``x`` drawn at random from a token pool (e.g.
   the one-token names of :func:`~agemem_gym.trainers.models.word_tokenizer`); the loss covers the repeat only,
   which is predictable by copying and by nothing else.
2. optionally, short prompt/response pairs (a stage-1 paragraph and its ``Add_memory`` call, a retrieval and the
   answer read off it) whose names are drawn afresh at every step, so they too can be fitted only by copying.

:func:`pretrain_copying` runs both phases and logs the in-distribution copy accuracy (argmax of the model at every
loss position) so the phase change can be seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["batch_tensors", "masked_next_token_loss", "pretrain_copying", "repeated_sequence"]

log = logging.getLogger(__name__)

Pair = tuple[list[int], list[int]]  # (prompt ids, response ids): the response carries the loss


def repeated_sequence(
    pool: Sequence[int],
    length: int,
    sep_id: int,
    rng: np.random.Generator,
    *,
    common: Sequence[int] = (),
    common_rate: float = 0.0,
    phrase: Sequence[int] = (),
    phrase_rate: float = 0.0,
    space_id: int | None = None,
) -> tuple[list[int], list[bool]]:
    """``x1 ... xL SEP x1 ... xL`` with ``L = length`` tokens drawn from ``pool`` (with replacement), and its loss
    mask: ``mask[i]`` says token ``i`` is a target (predicted from the tokens before it), true on the repeat only.

    With ``common``, each ``x`` is instead drawn from ``common`` (a few frequent words, e.g. "was", "in") with
    probability ``common_rate``. A common word then occurs several times in the first half, so the token after it
    in the repeat is found only by matching the two tokens before it, as "... born in -> Town" needs: a one-token
    induction match on "in" is ambiguous.

    With ``phrase`` (a template of token ids, a negative id a slot, e.g. ``[-1, was, born, in, -1, .]`` for
    "<Name> was born in <Town>."), each of the ``length`` draws is instead, with probability ``phrase_rate``, the
    template with its slots filled from ``pool``. Several such phrases in the first half share the prefix "was
    born in", so the town in the repeat is found only by keying on the name before it.

    With ``space_id``, the draws are joined by that token, as a word tokenizer writes text ("x1 _ x2 _ x3"): every
    name then follows the same space token, so a copy must match the token *two* back ("in _ -> Town"), as the
    town of a stored sentence needs.

    >>> ids, mask = repeated_sequence([5, 6, 7], 4, 0, np.random.default_rng(0))
    >>> ids[:4] == ids[5:], ids[4], mask == [False] * 5 + [True] * 4
    (True, 0, True)
    """
    if length < 1 or not pool:
        raise ValueError(f"repeated_sequence expects length >= 1 and a non-empty pool, got {length} and {len(pool)}")
    xs = [int(pool[i]) for i in rng.integers(len(pool), size=length)]
    if common and common_rate > 0:
        swap = rng.random(length) < common_rate
        xs = [int(common[int(rng.integers(len(common)))]) if s else x for x, s in zip(xs, swap)]
    units = [[x] for x in xs]
    if phrase and phrase_rate > 0:
        starts = rng.random(length) < phrase_rate
        fill = lambda t: int(pool[int(rng.integers(len(pool)))]) if t < 0 else int(t)  # noqa: E731
        units = [[fill(t) for t in phrase] if start else unit for unit, start in zip(units, starts)]
    xs = []
    for i, unit in enumerate(units):
        if space_id is not None and i > 0:
            xs.append(int(space_id))
        xs += unit
    n = len(xs)
    return [*xs, int(sep_id), *xs], [False] * (n + 1) + [True] * n


def batch_tensors(rows: Sequence[tuple[list[int], list[bool]]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-padded ids ``(B, T)`` and loss mask ``(B, T)`` (false on padding). Right padding needs no attention
    mask: a causal model's positions never see the padding after them, and padding carries no loss."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for b, (row, row_mask) in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[b, : len(row)] = torch.tensor(row_mask, dtype=torch.bool)
    return ids, mask


def masked_next_token_loss(
    model: nn.Module, ids: Tensor, mask: Tensor, *, negatives: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy of the tokens where ``mask`` is true, each predicted from the tokens before it, and the
    share the model's argmax gets right. The output layer runs on the target positions only.

    With ``negatives`` (token ids), the softmax runs over a sampled vocabulary instead of the whole one: every token
    of ``ids`` (the context, so every wrong copy is a candidate) plus ``negatives`` (sampled softmax, Jean et al.
    2015, "On using very large target vocabulary for neural machine translation"). Over a word vocabulary of
    ~15,000 entries the full output layer is ~90% of a step's cost on a CPU at this model size.

    ``model`` is a transformers causal LM with a ``.model`` trunk and an ``.lm_head`` (Qwen2, Llama, ...).
    """
    hidden = model.model(input_ids=ids).last_hidden_state  # type: ignore[operator]  # (B, T, C)
    targets = mask[:, 1:]  # (B, T-1): token t+1 is a target, predicted at position t
    h = hidden[:, :-1][targets]  # (N, C)
    labels = ids[:, 1:][targets]  # (N,)
    if negatives is None:
        logits = model.lm_head(h)  # type: ignore[operator]  # (N, V)
    else:
        vocab = torch.unique(torch.cat([ids.flatten(), negatives]))  # (K,), sorted
        logits = h @ model.lm_head.weight[vocab].T  # type: ignore[index]  # (N, K)
        labels = torch.searchsorted(vocab, labels)  # (N,): positions in vocab
    loss = F.cross_entropy(logits, labels)
    return loss, (logits.argmax(-1) == labels).float().mean()


def _pair_row(pair: Pair) -> tuple[list[int], list[bool]]:
    prompt, response = pair
    return [*prompt, *response], [False] * len(prompt) + [True] * len(response)


def pretrain_copying(
    model: nn.Module,
    pool: Sequence[int],
    *,
    sep_id: int,
    pad_id: int,
    steps: int,
    pair_steps: int = 0,
    draw_pairs: Callable[[np.random.Generator, int], list[Pair]] | None = None,
    batch_size: int = 32,
    min_length: int = 10,
    max_length: int = 30,
    learning_rate: float = 1e-3,
    negatives: int = 512,
    common: Sequence[int] = (),
    common_rate: float = 0.0,
    phrase: Sequence[int] = (),
    phrase_rate: float = 0.0,
    space_id: int | None = None,
    seed: int = 0,
    log_every: int = 100,
) -> list[dict[str, Any]]:
    """Train ``model`` for ``steps`` AdamW steps on :func:`repeated_sequence` batches (lengths drawn from
    ``[min_length, max_length]``), then ``pair_steps`` on ``draw_pairs(rng, batch_size)`` prompt/response pairs;
    returns a log row every ``log_every`` steps and at the end of each phase: ``phase`` ("repeat" or "pairs"),
    ``step``, the mean training ``loss`` since the last row, ``copy_acc``: the argmax accuracy over the *whole*
    vocabulary on the loss positions of a fixed batch of the phase (drawn once, never trained on), and ``seconds``
    since the start.

    Each step's softmax runs over the batch's own tokens plus ``negatives`` random ids of the vocabulary
    (:func:`masked_next_token_loss`; 0: the whole vocabulary). ``common``, ``common_rate``, ``phrase``,
    ``phrase_rate`` and ``space_id`` go to :func:`repeated_sequence`.

    The learning rate warms up over the first 5% of each phase and then stays constant: the phase change comes at
    a step nobody knows in advance, and a decay that ends before it would stall it.
    """
    if steps < 0 or pair_steps < 0:
        raise ValueError(f"'steps' and 'pair_steps' must be >= 0, got {steps} and {pair_steps}")
    if pair_steps and draw_pairs is None:
        raise ValueError(
            "pretrain_copying: pair_steps > 0 needs draw_pairs (a function rng, n -> [(prompt, response)])"
        )
    rng = np.random.default_rng(seed)
    vocab_size = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
    params = [p for p in model.parameters() if p.requires_grad]
    history: list[dict[str, Any]] = []
    started = time.perf_counter()

    def draw(phase: str) -> tuple[Tensor, Tensor]:
        if phase == "repeat":
            lengths = rng.integers(min_length, max_length + 1, size=batch_size)
            rows = [
                repeated_sequence(
                    pool,
                    int(n),
                    sep_id,
                    rng,
                    common=common,
                    common_rate=common_rate,
                    phrase=phrase,
                    phrase_rate=phrase_rate,
                    space_id=space_id,
                )
                for n in lengths
            ]
            return batch_tensors(rows, pad_id)
        assert draw_pairs is not None
        return batch_tensors([_pair_row(p) for p in draw_pairs(rng, batch_size)], pad_id)

    model.train()
    for phase, n_steps in (("repeat", steps), ("pairs", pair_steps)):
        if n_steps == 0:
            continue
        probe = draw(phase)
        optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
        warmup = max(1, n_steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s, w=warmup: min(1.0, (s + 1) / w))
        losses: list[float] = []
        for step in range(1, n_steps + 1):
            ids, mask = draw(phase)
            sampled = torch.from_numpy(rng.integers(vocab_size, size=negatives)) if negatives > 0 else None
            loss, _ = masked_next_token_loss(model, ids, mask, negatives=sampled)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if step % log_every == 0 or step == n_steps:
                with torch.no_grad():
                    _, acc = masked_next_token_loss(model, *probe)
                row = {
                    "phase": phase,
                    "step": step,
                    "loss": float(np.mean(losses)),
                    "copy_acc": float(acc),
                    "seconds": time.perf_counter() - started,
                }
                history.append(row)
                log.info("copy pretraining %s", row)
                losses = []
    return history
