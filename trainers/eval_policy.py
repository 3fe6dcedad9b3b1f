"""A language model as an ``agemem-eval`` policy, so checkpoints are scored by the env's own evaluation command.

Runs:
    agemem-eval --policies no_memory model:runs/learn__1/grpo/checkpoint.pt --episodes 64
    agemem-eval --policies model:runs/learn__1/warm_start model:smollm2 --env-id AgeMem-HotpotQA-v0 --data-path ...
    agemem-eval --policies "model:runs/<run>/checkpoint.pt?sample=1&temperature=0.7"   # sample instead of argmax

The core finds this module through the ``agemem_gym.policies`` entry point named ``model`` (the core never imports a
trainer): ``make_policy("model:<spec>", env, seed=...)`` calls :func:`from_spec`. ``<spec>`` is a ``checkpoint.pt``
written by :mod:`agemem_gym.trainers.grpo` (its model, LoRA adapters and generation settings are restored), or any
name :func:`~agemem_gym.trainers.models.load_model` accepts (``"smollm2"``, ``"tiny-128"``, a local folder such as
an SFT warm start). Each turn is generated exactly as in GRPO rollouts: the chat template over ``info["messages"]``,
the prompt's last ``max_prompt_tokens`` tokens, one turn of at most ``max_new_tokens`` that stops at a closing tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from agemem_gym.errors import ConfigError
from agemem_gym.evaluation.agents import TokenUsage
from agemem_gym.trainers.models import load_model
from agemem_gym.trainers.policy import Sampling, encode_chat, generate

__all__ = ["ModelPolicy", "from_spec"]

_OPTIONS = {"sample": int, "temperature": float, "top_p": float, "max_new_tokens": int, "max_prompt_tokens": int}


class ModelPolicy:
    """``reset(info)`` / ``act(observation, info) -> str`` over a causal LM, one env at a time.

    Args:
        model: The causal LM (on any device; generation runs where its parameters are).
        tokenizer: Its tokenizer, with a chat template.
        sampling: How a turn is generated (greedy by default, as evaluations usually are).
        max_prompt_tokens: Longer prompts keep their last this many tokens.
        pass_tools: Also pass ``info["tools"]`` to the chat template.
        seed: Seeds the torch RNG at every :meth:`reset` when sampling, so an episode's draws depend on the
            seed alone (two policies compared on the same tasks see the same random numbers).

    ``usage`` counts the current episode's tokens exactly as a server's ``usage`` would: the prompt ids fed (after
    any cut to ``max_prompt_tokens``) and the ids generated, so ``agemem-eval`` reports tokens per turn for it too.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        sampling: Sampling | None = None,
        max_prompt_tokens: int = 4096,
        pass_tools: bool = False,
        seed: int = 0,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.sampling = sampling or Sampling(greedy=True)
        self.max_prompt_tokens = max_prompt_tokens
        self.pass_tools = pass_tools
        self.seed = seed
        self._episode = 0
        self.usage = TokenUsage()

    def reset(self, info: Mapping[str, Any]) -> None:
        """Start an episode (reseeds sampling from ``seed`` and the episode's index)."""
        if not self.sampling.greedy:
            torch.manual_seed(self.seed * 1_000_003 + self._episode)
        self._episode += 1
        self.usage = TokenUsage()

    @torch.no_grad()
    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        """One agent turn for the context in ``info["messages"]``."""
        tools = info.get("tools") if self.pass_tools else None
        prompt, _ = encode_chat(self.tokenizer, info["messages"], max_prompt_tokens=self.max_prompt_tokens, tools=tools)
        turn = generate(self.model, self.tokenizer, [prompt], self.sampling)[0]
        self.usage.add(len(turn.prompt_ids), len(turn.response_ids))
        return turn.text


def _split_options(spec: str) -> tuple[str, dict[str, Any]]:
    """``"path?temperature=0.7&sample=1"`` -> ``("path", {"temperature": 0.7, "sample": 1})``."""
    path, _, query = spec.partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key not in _OPTIONS:
            raise ConfigError(f"unknown model-policy option {key!r} in {spec!r}; choose from {', '.join(_OPTIONS)}")
        try:
            options[key] = _OPTIONS[key](value)
        except ValueError:
            raise ConfigError(f"model-policy option {key!r} must be {_OPTIONS[key].__name__}, got {value!r}") from None
    return path, options


def from_spec(spec: str, env: Any = None, *, seed: int = 0) -> ModelPolicy:
    """A :class:`ModelPolicy` from ``"<checkpoint.pt or model name/folder>[?option=value&...]"``.

    Options: ``sample`` (1: sample instead of argmax), ``temperature``, ``top_p``, ``max_new_tokens``,
    ``max_prompt_tokens``. A GRPO checkpoint brings its own generation settings; options override them.

    Raises:
        ConfigError: The spec is empty, names a missing checkpoint, or has an unknown or malformed option.
    """
    path, options = _split_options(spec)
    if not path:
        raise ConfigError("a model policy needs a checkpoint or model: 'model:<checkpoint.pt | name | folder>'")
    if path.endswith(".pt"):
        if not Path(path).is_file():
            raise ConfigError(f"checkpoint {path!r} does not exist; GRPO writes runs/<run>/checkpoint.pt")
        from agemem_gym.trainers.grpo import load_checkpoint_model  # the trainer only when a checkpoint is asked

        model, tokenizer, args = load_checkpoint_model(path)
        sampling = Sampling(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
        max_prompt_tokens, pass_tools = args.max_prompt_tokens, args.pass_tools
    else:
        model, tokenizer = load_model(path, seed=seed)
        sampling, max_prompt_tokens, pass_tools = Sampling(), 4096, False
    sampling = replace(
        sampling,
        greedy=not options.get("sample", 0),
        temperature=options.get("temperature", sampling.temperature),
        top_p=options.get("top_p", sampling.top_p),
        max_new_tokens=options.get("max_new_tokens", sampling.max_new_tokens),
    )
    return ModelPolicy(
        model,
        tokenizer,
        sampling=sampling,
        max_prompt_tokens=options.get("max_prompt_tokens", max_prompt_tokens),
        pass_tools=pass_tools,
        seed=seed,
    )
