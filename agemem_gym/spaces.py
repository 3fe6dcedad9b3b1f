"""A Gymnasium space for arbitrary Unicode text.

Gymnasium's :class:`~gymnasium.spaces.Text` checks every character against a fixed charset (its default rejects
"é") and needs the charset enumerated, which cannot cover everything a tokenizer emits. :class:`UnicodeText`
accepts any ``str`` up to ``max_length`` characters. It subclasses ``Text`` so Gymnasium's vector utilities batch
it as a tuple of strings. Text of any length has no fixed-size slot in shared memory, so an async vector env needs
``shared_memory=False`` (``gym.make_vec(..., vectorization_mode="async", vector_kwargs={"shared_memory": False})``);
left at Gymnasium's default it raises a :class:`~agemem_gym.errors.ConfigError` that says so, instead of failing
in a worker with ``KeyError('[')`` (Gymnasium's ``Text`` writer only knows its own charset).

>>> space = UnicodeText(max_length=10)
>>> space.contains("café ☕"), space.contains("x" * 11), space.contains(b"bytes")
(True, False, False)
"""

from __future__ import annotations

import multiprocessing
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
from gymnasium.spaces import Text
from gymnasium.vector.utils import create_shared_memory

from agemem_gym._validate import check
from agemem_gym.errors import ConfigError

__all__ = ["UnicodeText"]

# sample() draws from printable ASCII, Latin-1, a few scripts and emoji, so sampled agent text exercises
# the parser on non-ASCII input without producing lone surrogates (which cannot be encoded as UTF-8).
_SAMPLE_RANGES = ((0x20, 0x7E), (0xA0, 0xFF), (0x370, 0x3FF), (0x400, 0x4FF), (0x4E00, 0x4FFF), (0x1F300, 0x1F5FF))


class UnicodeText(Text):
    """Any Python ``str`` of length ``min_length`` to ``max_length`` (characters, not tokens)."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None):
        check("max_length", max_length, "int", gt=0)
        check("min_length", min_length, "int", ge=0, le=max_length, rule=f"an int in [0, max_length={max_length}]")
        super().__init__(max_length=max_length, min_length=min_length, seed=seed)

    def contains(self, x: Any) -> bool:
        """True for any ``str`` whose length is within bounds."""
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string of printable characters from several scripts (``mask`` is not supported)."""
        if mask is not None or probability is not None:
            raise ConfigError("UnicodeText.sample() takes no mask or probability; got one")
        hi = min(self.max_length, max(self.min_length, 64))
        n = int(self.np_random.integers(self.min_length, hi + 1))
        blocks = self.np_random.integers(len(_SAMPLE_RANGES), size=n)
        chars = [chr(int(self.np_random.integers(lo, top + 1))) for lo, top in (_SAMPLE_RANGES[b] for b in blocks)]
        return "".join(chars)

    def __repr__(self) -> str:
        return f"UnicodeText(min_length={self.min_length}, max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def __hash__(self) -> int:
        return hash(("UnicodeText", self.min_length, self.max_length))


@create_shared_memory.register(UnicodeText)
def _no_shared_memory(space: UnicodeText, n: int = 1, ctx: ModuleType = multiprocessing) -> NoReturn:
    """AsyncVectorEnv's default ``shared_memory=True`` for UnicodeText: a clear error instead of a dead worker.

    Gymnasium would allocate ``n * max_length`` int32 slots (40 MB per env for the AgeMem observation) and then
    fail in the worker on the first character outside ``Text``'s charset; its own spaces without a fixed size
    (``Graph``, ``Sequence``) refuse shared memory the same way.
    """
    raise ConfigError(
        f"{space!r} observations are text of any length, which has no fixed-size slot in shared memory: pass "
        "vector_kwargs={'shared_memory': False} to gymnasium.make_vec(..., vectorization_mode='async') (or "
        "shared_memory=False to AsyncVectorEnv); the observations then travel through the workers' pipes"
    )
