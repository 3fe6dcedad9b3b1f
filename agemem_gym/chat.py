"""Chat-template token ids: the one encoder that turns messages into a prompt, for every trainer and adapter.

The trainer's rollouts (:mod:`agemem_gym.trainers.policy`), the SFT warm start, the step records
(:mod:`agemem_gym.step_records`), the verl loop and the transformers summariser all call :func:`encode_chat`, so a
prompt is the same token ids wherever it is built.

>>> class Bytes:  # a stand-in tokenizer: one id per character, a two-role template
...     def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False):
...         return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")
...     def __call__(self, text, add_special_tokens=True):
...         return type("Encoding", (), {"input_ids": [ord(c) for c in text]})()
>>> ids, cut = encode_chat(Bytes(), [{"role": "user", "content": "hi"}])
>>> "".join(map(chr, ids)), cut
('<user>hi<assistant>', 0)
>>> ids, cut = encode_chat(Bytes(), [{"role": "user", "content": "hi"}], max_prompt_tokens=12)
>>> "".join(map(chr, ids)), cut
('i<assistant>', 7)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["encode_chat"]


def encode_chat(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    *,
    tools: list[dict[str, Any]] | None = None,
    generation_prompt: bool = True,
    max_prompt_tokens: int | None = None,
) -> tuple[list[int], int]:
    """Render ``messages`` with the tokenizer's chat template and tokenise it; returns the ids and how many were cut.

    The template writes every special token itself, so the text is tokenised with ``add_special_tokens=False``
    (a second BOS would shift every position a model was trained on).

    Args:
        tokenizer: A transformers tokenizer with a chat template.
        messages: OpenAI-style ``{"role", "content"}`` dicts (the env's ``info["messages"]``).
        tools: Tool schemas for templates that take them (the env's system prompt already lists the tools).
        generation_prompt: End with the assistant header, as a prompt for the model's next turn.
        max_prompt_tokens: Keep only the last this many ids (the most recent context and the assistant header),
            like TRL's left truncation; None keeps all.
    """
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tools=tools, tokenize=False, add_generation_prompt=generation_prompt
    )
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    cut = max(0, len(ids) - max_prompt_tokens) if max_prompt_tokens else 0
    return ids[cut:], cut
