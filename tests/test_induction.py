"""Copy pretraining (trainers/induction.py): the repeated-sequence generator, the loss on the repeat only, the
sampled softmax, a few training steps, and the learning demo's renamed copy pairs (fast: a 64-wide model)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from agemem_gym.envs.synthetic import name_vocabulary
from agemem_gym.trainers.induction import (
    batch_tensors,
    masked_next_token_loss,
    pretrain_copying,
    repeated_sequence,
)
from agemem_gym.trainers.models import tiny_model, tiny_tokenizer


def test_repeated_sequence_repeats_the_first_half_after_the_separator_and_masks_only_the_repeat() -> None:
    rng = np.random.default_rng(3)
    for length in (1, 7, 30):
        ids, mask = repeated_sequence(range(100, 200), length, 5, rng)
        assert len(ids) == len(mask) == 2 * length + 1
        assert ids[:length] == ids[length + 1 :] and ids[length] == 5
        assert all(100 <= i < 200 for i in ids[:length])
        assert not any(mask[: length + 1]) and all(mask[length + 1 :])
    with pytest.raises(ValueError, match="length >= 1"):
        repeated_sequence([1], 0, 5, rng)


def test_common_words_recur_in_the_first_half_so_a_one_token_match_is_ambiguous() -> None:
    rng = np.random.default_rng(0)
    ids, mask = repeated_sequence(range(100, 10_000), 200, 5, rng, common=[1, 2], common_rate=0.5)
    first = ids[:200]
    assert ids[201:] == first and sum(mask) == 200
    assert 70 < sum(x in (1, 2) for x in first) < 130  # about half, and each common word many times
    assert repeated_sequence(range(100, 200), 5, 5, np.random.default_rng(1), common=[1], common_rate=0.0) == (
        repeated_sequence(range(100, 200), 5, 5, np.random.default_rng(1))
    )


def test_the_loss_is_the_cross_entropy_of_the_repeated_half_only() -> None:
    model = tiny_model(seed=0)
    rng = np.random.default_rng(0)
    rows = [repeated_sequence(range(65, 91), n, 10, rng) for n in (4, 6)]
    ids, mask = batch_tensors(rows, pad_id=256)
    assert ids.shape == mask.shape == (2, 13) and not mask[0, 9:].any()  # padding carries no loss
    with torch.no_grad():
        loss, _ = masked_next_token_loss(model, ids, mask)
        logits = model(input_ids=ids).logits  # (B, T, V)
    want = []
    for b, n in enumerate((4, 6)):
        for t in range(n + 1, 2 * n + 1):  # the repeat's tokens, each predicted one position earlier
            want.append(F.cross_entropy(logits[b, t - 1], ids[b, t]))
    assert float(loss) == pytest.approx(float(torch.stack(want).mean()), rel=1e-5)
    # the first half is never a target: changing what the loss would score there changes nothing
    ids2, mask2 = ids.clone(), mask.clone()
    mask2[:, :3] = False
    with torch.no_grad():
        assert float(masked_next_token_loss(model, ids2, mask2)[0]) == pytest.approx(float(loss), rel=1e-6)


def test_the_sampled_softmax_over_the_whole_vocabulary_is_the_full_loss() -> None:
    model = tiny_model(seed=1)
    ids, mask = batch_tensors([repeated_sequence(range(65, 91), 5, 10, np.random.default_rng(1))], pad_id=256)
    with torch.no_grad():
        full, _ = masked_next_token_loss(model, ids, mask)
        sampled, _ = masked_next_token_loss(model, ids, mask, negatives=torch.arange(259))
        few, _ = masked_next_token_loss(model, ids, mask, negatives=torch.tensor([0, 1]))
    assert float(sampled) == pytest.approx(float(full), rel=1e-5)
    assert float(few) < float(full)  # fewer candidates, an easier softmax


def test_a_few_pretraining_steps_log_both_phases_and_lower_the_repeat_loss() -> None:
    model = tiny_model(seed=0)
    pairs = lambda rng, n: [([65, 66, 67], [66, 67]) for _ in range(n)]  # noqa: E731
    history = pretrain_copying(
        model, list(range(65, 91)), sep_id=10, pad_id=256, steps=30, pair_steps=2, draw_pairs=pairs,
        batch_size=8, min_length=3, max_length=6, learning_rate=3e-3, log_every=10,
    )  # fmt: skip
    assert [(r["phase"], r["step"]) for r in history] == [("repeat", 10), ("repeat", 20), ("repeat", 30), ("pairs", 2)]
    assert history[2]["loss"] < history[0]["loss"]
    assert all(0.0 <= r["copy_acc"] <= 1.0 for r in history)
    with pytest.raises(ValueError, match="draw_pairs"):
        pretrain_copying(model, [65], sep_id=10, pad_id=256, steps=0, pair_steps=1)


def test_copy_pairs_are_renamed_at_every_draw_and_still_copy_from_their_prompt() -> None:
    import gymnasium as gym

    from agemem_gym.trainers import sft
    from agemem_gym.trainers.learning_demo import Behaviours, copy_pair_sampler, recall_setting

    env = gym.make("AgeMem-Synthetic-v0", **recall_setting(), suite_seed=0, n_tasks=2)
    records = sft.collect_pairs(env, Behaviours(1.0, 0.0, 1.0), list(env.unwrapped.suite.task_ids), seed=0)  # type: ignore[attr-defined]
    env.close()
    adds = [{**r, "messages": r["messages"][-1:]} for r in records if "Add_memory" in r["response"]]
    tok = tiny_tokenizer()
    draw = copy_pair_sampler(tok, adds, name_vocabulary(suffixes=False))
    rng = np.random.default_rng(0)
    first, second = draw(rng, 4), draw(rng, 4)
    assert first != second
    for prompt, response in first:
        stored = tok.decode(response).split('"content": "', 1)[1].split('"', 1)[0]
        assert stored in tok.decode(prompt)


def test_birth_phrases_and_spaces_make_the_town_follow_a_shared_two_token_prefix() -> None:
    from agemem_gym.trainers.learning_demo import birth_phrase
    from agemem_gym.trainers.models import word_tokenizer

    tok = word_tokenizer([*name_vocabulary(), "was", "born", "in"])
    phrase = birth_phrase(tok)
    assert phrase.count(-1) == 2 and phrase[0] == phrase[-2] == -1
    a, b = name_vocabulary(suffixes=False)[:2]
    filled = [int(i) for i in tok.convert_tokens_to_ids([a, b])]
    assert tok.decode(
        [filled[0] if t == -1 and i == 0 else filled[1] if t == -1 else t for i, t in enumerate(phrase)]
    ) == (f"{a} was born in {b}.")
    space = int(tok(" ", add_special_tokens=False).input_ids[0])
    pool = list(range(256, 400))
    ids, mask = repeated_sequence(pool, 40, 5, np.random.default_rng(0), phrase=phrase, phrase_rate=0.3, space_id=space)
    n = ids.index(5)
    assert ids[:n] == ids[n + 1 :] and sum(mask) == n and not any(mask[: n + 1])
    first = ids[:n]
    born = [i for i in range(len(first) - 4) if first[i : i + 4] == phrase[4:8]]  # "born _ in _"
    assert len(born) >= 3 and all(first[i + 4] in pool for i in born)  # several towns after the same prefix
    assert not any(x in pool and y in pool for x, y in itertools.pairwise(first))  # a space between any two names
    assert first.count(space) >= 40 - 1
    # off by default: the same draws as before
    rng_args = (pool, 5, 5)
    assert repeated_sequence(*rng_args, np.random.default_rng(1), phrase=phrase, phrase_rate=0.0) == repeated_sequence(
        *rng_args, np.random.default_rng(1)
    )
