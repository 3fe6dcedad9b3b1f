"""Chat-template token ids, the one encoder every trainer and adapter uses to turn messages into a prompt.

>>> class Bytes:  # a stand-in tokenizer: one id per character, a two-role template
...     def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False):
...         return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")
...     def __call__(self, text, add_special_tokens=True):
...         return type("Encoding", (), {"input_ids": [ord(c) for c in text]})()
>>> ids = chat_ids(Bytes(), [{"role": "user", "content": "hi"}])
>>> "".join(map(chr, ids))
'<user>hi<assistant>'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["chat_ids"]


def chat_ids(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    *,
    tools: list[dict[str, Any]] | None = None,
    generation_prompt: bool = True,
) -> list[int]:
    """The token ids of ``messages`` rendered by the tokenizer's chat template (with ``tools`` where the template
    takes them), ending with the assistant header when ``generation_prompt``.

    The template writes every special token itself, so the text is tokenised with ``add_special_tokens=False``
    (a second BOS would shift every position a model was trained on).
    """
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tools=tools, tokenize=False, add_generation_prompt=generation_prompt
    )
    return list(tokenizer(text, add_special_tokens=False).input_ids)
