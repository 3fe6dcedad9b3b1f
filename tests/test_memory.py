"""Tests for agemem_gym.memory: the hnswlib-backed long-term memory store."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import agemem_gym
from agemem_gym.errors import ConfigError, MemoryNotFoundError, StoreFormatError, StoreLockedError, StoreWriteError
from agemem_gym.memory import (
    DedupConfig,
    MemoryItem,
    MemoryStore,
    SearchHit,
    StoreConfig,
    format_memory_id,
    persistence,
)
from agemem_gym.memory import files as _store_files
from agemem_gym.memory import index as memory_index
from agemem_gym.memory.embedders import CallableEmbedder, HashingEmbedder
from agemem_gym.memory.files import manifest_digest, seal_manifest

ID_RE = re.compile(r"^m_[0-9a-f]{4,}$")
FACTS = [
    "The Orvel Bridge was built in 1841 over the Tamsin.",
    "Marie Curie won the Nobel prize in physics in 1903.",
    "Paris is the capital of France.",
    "The Amazon is the largest rainforest on Earth.",
    "Mount Everest is 8849 metres high.",
    "Ada Lovelace wrote the first published algorithm.",
]


def exact_scores(store: MemoryStore, query: str) -> dict[str, float]:
    """The oracle's cosine of every live item to ``query``."""
    items = list(store)
    if not items:
        return {}
    scores = store.embedder([it.content for it in items]) @ store.embedder([query])[0]
    return dict(zip([it.id for it in items], scores.tolist()))


def exact_top(store: MemoryStore, query: str, k: int) -> list[tuple[str, float]]:
    """The oracle: exact cosine top-k over the live items, by descending score then id."""
    return sorted(exact_scores(store, query).items(), key=lambda p: (-p[1], p[0]))[:k]


def matches_exact(store: MemoryStore, got: list[SearchHit], query: str, k: int, tol: float = 1e-5) -> bool:
    """Hits equal the oracle's top-k in scores (to tol) and in ids, except where the oracle's scores tie."""
    scores = exact_scores(store, query)
    want = exact_top(store, query, k)
    if len(got) != len(want) or len({h.item.id for h in got}) != len(got):
        return False
    for hit, (wid, wscore) in zip(got, want):
        if abs(hit.score - wscore) > tol or (hit.item.id != wid and abs(scores[hit.item.id] - wscore) > tol):
            return False
    return True


def filled(n: int = 6, **config) -> MemoryStore:
    store = MemoryStore("hash", config=StoreConfig(**config))
    store.add_many([FACTS[i % len(FACTS)] + f" (note {i})" for i in range(n)])
    return store


# -- module hygiene ------------------------------------------------------------------------------------------------


def test_hnswlib_is_imported_only_by_the_memory_index_module():
    """No module of the package other than agemem_gym/memory/index.py imports hnswlib."""
    root = Path(agemem_gym.__file__).resolve().parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p != root / "memory" / "index.py"
        and re.search(r"^\s*(import|from)\s+hnswlib", p.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []


# -- add, ids, accessors ---------------------------------------------------------------------------------------------


def test_add_returns_the_new_item_with_sequential_ids():
    """add() returns an 'added' result whose item carries the id, content, metadata, type and steps."""
    store = MemoryStore()
    first = store.add(FACTS[0], metadata={"src": "wiki"}, memory_type="event", step=7)
    second = store.add(FACTS[1])
    assert (first.action, first.duplicate_of, first.reason) == ("added", None, "")
    assert first.item == MemoryItem("m_0001", FACTS[0], {"src": "wiki"}, "event", 7, 7)
    assert second.item.id == "m_0002" and second.item.memory_type == "fact"
    assert first.item.to_dict() == {
        "id": "m_0001", "content": FACTS[0], "metadata": {"src": "wiki"}, "memory_type": "event",
        "created_step": 7, "updated_step": 7,
    }  # fmt: skip


def test_ids_match_the_format_and_are_never_reused():
    """Ids match m_<hex, 4+ digits> and are not reused after delete or clear; restore rewinds the counter too."""
    store = MemoryStore()
    seen = [store.add(f).item.id for f in FACTS[:3]]
    store.delete("m_0003")
    seen.append(store.add("x").item.id)
    state = store.snapshot()
    store.clear()
    seen.append(store.add("y").item.id)
    assert seen == ["m_0001", "m_0002", "m_0003", "m_0004", "m_0005"]
    assert all(ID_RE.match(i) for i in seen)
    # A restored store continues exactly as the snapshotted one would: the abandoned branch's m_0005 is issued
    # again there, while ids of the restored history (m_0003 was deleted before the snapshot) stay retired.
    store.restore(state)
    assert store.add("z").item.id == "m_0005" and store.stats()["id_counter"] == 5
    assert format_memory_id(0xFFFF) == "m_ffff" and format_memory_id(0x10000) == "m_10000"


def test_ids_survive_save_and_load(tmp_path):
    """After save/load the counter continues where it was, even when the newest items were deleted."""
    store = filled(5)
    store.delete("m_0005")
    store.save(tmp_path / "s")
    assert MemoryStore.load(tmp_path / "s").add("new").item.id == "m_0006"


def test_accessors_follow_creation_order():
    """len, in, iter, ids and get see the live items in creation order."""
    store = filled(4)
    store.delete("m_0002")
    assert len(store) == 3 and "m_0003" in store and "m_0002" not in store and 3 not in store
    assert store.ids() == ["m_0001", "m_0003", "m_0004"] == [it.id for it in store]
    assert store.get("m_0002") is None and store.get("m_0004").content.endswith("(note 3)")


def test_metadata_is_an_immutable_private_copy():
    """Changing the caller's dict later does not change the item, and the item's metadata is read-only."""
    meta = {"tags": ["a"], "n": 1}
    item = MemoryStore().add("fact", metadata=meta).item
    meta["n"] = 2
    meta["tags"].append("b")
    assert dict(item.metadata) == {"tags": ["a"], "n": 1}
    with pytest.raises(TypeError):
        item.metadata["n"] = 3  # type: ignore[index]
    item.metadata["tags"].append("c")  # a copy: the stored item does not change
    assert item.metadata["tags"] == ["a"] and MemoryStore().add("x", metadata=item.metadata).item.metadata == {
        "tags": ["a"],
        "n": 1,
    }
    pickle.loads(pickle.dumps(item))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metadata": {1: "x"}}, r"'metadata' keys must be str \(JSON object keys\), got int 1"),
        ({"metadata": {"x": object()}}, r"'metadata' must be JSON-serialisable"),
        ({"metadata": {"x": float("nan")}}, r"no NaN or infinity"),
        ({"metadata": [("a", 1)]}, r"'metadata' must be a mapping \(a JSON object\) or None, got list"),
        ({"memory_type": ""}, r"'memory_type' must be a non-empty str, got ''"),
        ({"step": -1}, r"'step' must be an int >= 0, got -1"),
    ],
)
def test_add_rejects_bad_arguments(kwargs, message):
    """Programmer errors in add() raise ConfigError with the rule and the value, and change nothing."""
    store = MemoryStore()
    with pytest.raises(ConfigError, match=message):
        store.add("fact", **kwargs)
    assert len(store) == 0 and store.stats()["id_counter"] == 0


def test_add_many_is_one_batch_with_per_item_metadata():
    """add_many adds in order with one metadata per text, and checks lengths first."""
    store = MemoryStore()
    results = store.add_many(FACTS[:3], metadatas=[{"i": 0}, None, {"i": 2}], step=4)
    assert [r.item.id for r in results] == ["m_0001", "m_0002", "m_0003"]
    assert [dict(r.item.metadata) for r in results] == [{"i": 0}, {}, {"i": 2}]
    assert store.add_many([]) == []
    with pytest.raises(ConfigError, match=r"'metadatas' must have one entry per content \(2\), got 1"):
        store.add_many(["a", "b"], metadatas=[None])
    with pytest.raises(ConfigError, match=r"'contents' must be a sequence of str, got str"):
        store.add_many("abc")
    assert len(store) == 3


def test_add_many_uses_one_embedder_call():
    """add_many embeds the whole batch in a single embedder call."""
    calls: list[int] = []
    inner = HashingEmbedder()

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return inner(texts)

    store = MemoryStore(CallableEmbedder(counting, dim=256))
    store.add_many(FACTS)
    store.search_many(FACTS[:3])
    assert calls == [len(FACTS), 3]


# -- update and delete ---------------------------------------------------------------------------------------------


def test_update_replaces_in_place_and_changes_results():
    """update keeps the id and the index slot, merges metadata, bumps updated_step, and search sees the new text."""
    store = filled(6)
    before = store.stats()
    item = store.update("m_0002", "Volcanoes erupt molten lava.", metadata={"v": 2}, step=9)
    assert (item.id, item.content, item.updated_step, item.created_step) == (
        "m_0002",
        "Volcanoes erupt molten lava.",
        9,
        0,
    )
    assert store.update("m_0002", "Volcanoes erupt molten lava.", metadata={"w": 1}).metadata == {"v": 2, "w": 1}
    assert store.stats()["slots_used"] == before["slots_used"] and store.ids() == before_ids(6)
    assert store.search("volcano lava", top_k=1)[0].item.id == "m_0002"
    assert matches_exact(store, store.search("Marie Curie Nobel", top_k=6), "Marie Curie Nobel", 6)


def before_ids(n: int) -> list[str]:
    return [format_memory_id(i) for i in range(1, n + 1)]


def test_update_and_delete_unknown_ids_raise_with_the_live_count():
    """Unknown ids raise MemoryNotFoundError naming the id and how many items are live."""
    store = filled(3)
    with pytest.raises(MemoryNotFoundError, match=r"no live memory with id 'm_0099': the store holds 3 live items"):
        store.update("m_0099", "x")
    store.delete("m_0001")
    with pytest.raises(MemoryNotFoundError, match=r"no live memory with id 'm_0001': the store holds 2 live items"):
        store.delete("m_0001")
    with pytest.raises(KeyError):  # MemoryNotFoundError is a KeyError too
        store.delete("nope")


def test_delete_returns_the_removed_item():
    """delete returns the item it removed, and the item no longer comes back from search."""
    store = filled(3)
    gone = store.delete("m_0002")
    assert gone.id == "m_0002" and gone.content.endswith("(note 1)")
    assert "m_0002" not in {h.item.id for h in store.search(gone.content, top_k=3)}


# -- search ---------------------------------------------------------------------------------------------------------


def test_search_scores_are_cosines_sorted_then_by_id():
    """Scores are cosine similarities, sorted descending, and exact duplicates tie-break by id."""
    store = MemoryStore()
    store.add_many(["same text", "other words entirely", "same text"])
    hits = store.search("same text", top_k=3)
    assert [h.item.id for h in hits] == ["m_0001", "m_0003", "m_0002"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6) and hits[0].score == hits[1].score
    assert matches_exact(store, hits, "same text", 3)


def test_k_above_live_count_returns_every_live_item():
    """top_k larger than the live count returns all live items instead of raising."""
    store = filled(3)
    assert len(store.search("anything", top_k=50)) == 3
    store.delete("m_0001")
    assert len(store.search("anything", top_k=50)) == 2


def test_search_on_empty_and_fully_deleted_store_returns_nothing():
    """An empty store, and one whose items were all deleted, return no hits."""
    store = MemoryStore()
    assert store.search("q") == [] and store.search_many(["a", "b"]) == [[], []]
    store.add_many(FACTS)
    for mid in store.ids():
        store.delete(mid)
    assert store.search("q", top_k=5) == [] and len(store) == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "3", None])
def test_top_k_must_be_a_positive_int(bad):
    """top_k that is not a positive int raises ConfigError with the pinned message."""
    with pytest.raises(ConfigError) as err:
        filled(2).search("q", top_k=bad)
    assert str(err.value) == f"'top_k' must be a positive int, got {bad!r}"


def test_search_many_and_search_vectors_match_search():
    """search_many and search_vectors give the same hits as one search per query."""
    store = filled(12)
    queries = ["Nobel prize", "capital city", "highest mountain"]
    singles = [store.search(q, top_k=4) for q in queries]
    assert store.search_many(queries, top_k=4) == singles
    assert store.search_vectors(store.embedder(queries), top_k=4) == singles
    assert store.search_vectors(store.embedder(queries)[0], top_k=4) == singles[:1]
    scaled = store.search_vectors(store.embedder(queries) * 3.0, top_k=4)  # normalised again
    assert [[(h.item.id, round(h.score, 5)) for h in row] for row in scaled] == [
        [(h.item.id, round(h.score, 5)) for h in row] for row in singles
    ]
    with pytest.raises(ConfigError, match=r"'vectors' must have shape \(m, 256\) or \(256,\), got \(2, 3\)"):
        store.search_vectors(np.ones((2, 3)))
    with pytest.raises(ConfigError, match=r"all-zero vector"):
        store.search_vectors(np.zeros(256))


def test_metadata_filter_semantics():
    """Filters AND their keys; memory_type/type fall back to the item's type; lists mean any-of; bool is not 1."""
    store = MemoryStore()
    store.add("alpha", metadata={"topic": "a", "flag": True}, memory_type="fact")
    store.add("alpha beta", metadata={"topic": "b", "flag": 1}, memory_type="event")
    store.add("alpha gamma", metadata={"topic": "a", "type": "meta"}, memory_type="event")

    def ids(flt, k=5):
        return sorted(h.item.id for h in store.search("alpha", top_k=k, metadata_filter=flt))

    assert ids({"topic": "a"}) == ["m_0001", "m_0003"]
    assert ids({"topic": ["b", "c"]}) == ["m_0002"]
    assert ids({"memory_type": "event"}) == ["m_0002", "m_0003"]
    assert ids({"type": "event"}) == ["m_0002"]  # m_0003's own metadata key 'type' wins
    assert ids({"type": ("meta", "fact")}) == ["m_0001", "m_0003"]
    assert ids({"topic": "a", "memory_type": "fact"}) == ["m_0001"]
    assert ids({"flag": True}) == ["m_0001"] and ids({"flag": 1}) == ["m_0002"]
    assert ids({"missing": "x"}) == [] and ids({"topic": []}) == []
    assert ids({}) == ["m_0001", "m_0002", "m_0003"]
    assert len(store.search("alpha", top_k=1, metadata_filter={"topic": "a"})) == 1
    with pytest.raises(ConfigError, match=r"'metadata_filter' must be a mapping with str keys or None"):
        store.search("alpha", metadata_filter=["topic"])  # type: ignore[arg-type]


def test_filtered_search_is_exact():
    """A filtered search equals the exact top-k over the matching items."""
    store = MemoryStore()
    rng = np.random.default_rng(0)
    words = ["river", "bridge", "city", "king", "war", "music", "film", "river bank"]
    for i in range(60):
        store.add(" ".join(rng.choice(words, size=4)), metadata={"even": i % 2 == 0})
    hits = store.search("river bridge", top_k=7, metadata_filter={"even": True})
    sub = MemoryStore()
    for it in store:
        if it.metadata["even"]:
            sub.add(it.content)
    want = exact_top(sub, "river bridge", 7)
    assert [round(h.score, 5) for h in hits] == [round(s, 5) for _, s in want]


# -- hnswlib pitfalls ------------------------------------------------------------------------------------------------


def test_capacity_grows_geometrically_past_the_initial_size():
    """Adding past initial_capacity resizes the index by the growth factor, and search still works."""
    store = MemoryStore(config=StoreConfig(initial_capacity=4, growth=2.0))
    assert store.stats()["capacity"] == 4
    for i in range(5):
        store.add(f"fact number {i}")
    assert store.stats()["capacity"] == 8
    store.add_many([f"more {i}" for i in range(50)])
    assert store.stats()["capacity"] == 64 and len(store) == 55
    assert store.search("fact number 3", top_k=1)[0].item.content == "fact number 3"


def test_heavy_deletion_rebuilds_and_results_stay_exact():
    """Deleting most items triggers rebuilds that drop tombstones, and results still equal exact search."""
    rng = np.random.default_rng(1)
    store = filled(200, max_tombstone_ratio=0.25)
    for mid in rng.permutation(store.ids())[:170]:
        store.delete(str(mid))
    stats = store.stats()
    assert stats["rebuilds"] >= 1 and stats["live"] == 30
    assert stats["tombstones"] <= 0.25 * stats["slots_used"]
    for query in ["Nobel prize physics", "capital of France", "note 7"]:
        assert matches_exact(store, store.search(query, top_k=10), query, 10)


def test_failed_hnswlib_query_falls_back_to_exact_search():
    """When tombstones make knn_query raise, the store answers with exact search instead."""
    # No rebuilds and a tiny ef, so hnswlib cannot collect enough live neighbours among the tombstones.
    store = filled(300, ef_search=1, M=2, max_tombstone_ratio=1.0)
    rng = np.random.default_rng(2)
    for mid in rng.permutation(store.ids())[:290]:
        store.delete(str(mid))
    hits = store.search("Marie Curie Nobel physics", top_k=8)
    assert store.stats()["exact_fallbacks"] >= 1 and store.stats()["tombstones"] == 290
    assert matches_exact(store, hits, "Marie Curie Nobel physics", 8)


def test_ef_is_at_least_k_and_ef_search():
    """ef is set to max(ef_search, k + slack) for a query and returns to ef_search for small k."""
    store = filled(600, ef_search=20)
    store.search("q", top_k=100)
    assert store.stats()["ef"] == 116
    store.search("q", top_k=2)
    assert store.stats()["ef"] == 20


def test_store_with_a_callable_embedder_probes_its_dim():
    """A CallableEmbedder without dim is probed once so the index can be created up front."""
    calls: list[int] = []

    def fn(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return HashingEmbedder(dim=16)(texts)

    store = MemoryStore(fn)
    assert store.dim == 16 and calls == [1]
    store.add("hello world")
    assert store.search("hello", top_k=1)[0].item.id == "m_0001"


def test_bad_embedder_output_is_caught_at_the_store():
    """An embedder object that returns the wrong shape raises ConfigError, not an hnswlib error."""

    class Bad:
        name, dim = "bad", 4

        def __call__(self, texts):
            return np.ones((len(texts), 3), dtype=np.float32)

    with pytest.raises(ConfigError, match=r"embedder 'bad' must return shape \(1, 4\), got \(1, 3\)"):
        MemoryStore(Bad()).add("x")


def test_concurrent_adds_and_searches_are_serialised():
    """Threads adding and searching at once raise nothing and lose nothing."""
    store = MemoryStore(config=StoreConfig(initial_capacity=2))
    errors: list[BaseException] = []

    def work(tid: int) -> None:
        try:
            for i in range(40):
                store.add(f"thread {tid} fact {i}")
                store.search(f"fact {i}", top_k=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store) == 160 and len(set(store.ids())) == 160


# -- config validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"M": 1}, r"'M' must be an int >= 2, got 1; e.g. StoreConfig\(M=16\)"),
        ({"ef_search": 0}, r"'ef_search' must be an int >= 1, got 0"),
        ({"growth": 1.0}, r"'growth' must be a number > 1, got 1.0"),
        ({"max_tombstone_ratio": 0}, r"'max_tombstone_ratio' must be a number in \(0, 1\], got 0"),
        ({"initial_capacity": 2.5}, r"'initial_capacity' must be an int >= 1, got 2.5"),
        ({"dedup": "merge"}, r"'dedup' must be a DedupConfig, got str"),
    ],
)
def test_store_config_validation(kwargs, message):
    """StoreConfig rejects out-of-range settings with the rule, the value and an example."""
    with pytest.raises(ConfigError, match=message):
        StoreConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "drop"}, r"'policy' must be one of \('off', 'merge', 'reject'\), got 'drop'"),
        ({"cosine_threshold": 1.5}, r"'cosine_threshold' must be a number in \[-1, 1\], got 1.5"),
        ({"fuzzy_threshold": -1}, r"'fuzzy_threshold' must be a number in \[0, 100\], got -1"),
        ({"candidates": 0}, r"'candidates' must be a positive int, got 0"),
    ],
)
def test_dedup_config_validation(kwargs, message):
    """DedupConfig rejects bad policies and thresholds with the rule and the value."""
    with pytest.raises(ConfigError, match=message):
        DedupConfig(**kwargs)


# -- near-duplicates -------------------------------------------------------------------------------------------------


def dedup_store(policy: str, **kwargs) -> MemoryStore:
    return MemoryStore(config=StoreConfig(dedup=DedupConfig(policy=policy, **kwargs)))  # type: ignore[arg-type]


def test_dedup_off_adds_duplicates():
    """With the default policy, the same text is added twice."""
    store = MemoryStore()
    assert [r.action for r in store.add_many(["Same.", "same"])] == ["added", "added"] and len(store) == 2


def test_dedup_merge_on_same_normalised_text():
    """Merge: same normalised text merges metadata into the existing item and bumps updated_step."""
    store = dedup_store("merge")
    store.add("The Orvel Bridge, 1841.", metadata={"a": 1, "b": 1}, step=1)
    res = store.add("the orvel   bridge 1841", metadata={"b": 2, "c": 3}, memory_type="other", step=5)
    assert (res.action, res.duplicate_of, res.reason) == ("merged", "m_0001", "same normalised text as m_0001")
    assert res.item.content == "The Orvel Bridge, 1841." and res.item.memory_type == "fact"
    assert dict(res.item.metadata) == {"a": 1, "b": 2, "c": 3} and res.item.updated_step == 5
    assert store.get("m_0001") == res.item and len(store) == 1
    assert store.add("new").item.id == "m_0002"  # a merge uses no id


def test_dedup_cosine_and_fuzzy_checks_both_needed():
    """A near-paraphrase passing both thresholds is caught with a reason naming both scores; a different fact is not."""
    store = dedup_store("reject", cosine_threshold=0.8, fuzzy_threshold=85)
    store.add("Marie Curie won the Nobel prize in physics in 1903 for radioactivity research")
    res = store.add("Marie Curie won the Nobel prize in physics in 1903 for radioactivity")
    assert res.action == "rejected" and res.duplicate_of == "m_0001"
    assert re.fullmatch(r"cosine 0\.\d{3} and token_set_ratio (9\d|100) with m_0001", res.reason), res.reason
    assert store.add("Pierre Curie was born in Paris in 1859").action == "added"
    assert len(store) == 2


def test_dedup_reject_leaves_the_store_unchanged():
    """Reject: the store, its counter and the existing item stay as they were."""
    store = dedup_store("reject")
    first = store.add("Paris is the capital of France.", metadata={"a": 1}).item
    before = store.snapshot()
    res = store.add("PARIS is the capital of France!", metadata={"b": 2}, step=3)
    assert (res.action, res.item) == ("rejected", first)
    assert store.get("m_0001") == first and store.stats()["id_counter"] == before["counter"]


def test_dedup_applies_within_one_add_many_batch():
    """add_many checks each text against earlier texts of the same batch too."""
    store = dedup_store("merge")
    store.add("alpha fact")
    results = store.add_many(
        ["beta fact", "Beta fact.", "alpha fact!", "gamma"], metadatas=[{"x": 1}, {"y": 2}, None, None]
    )
    assert [(r.action, r.item.id) for r in results] == [
        ("added", "m_0002"), ("merged", "m_0002"), ("merged", "m_0001"), ("added", "m_0003"),
    ]  # fmt: skip
    assert dict(store.get("m_0002").metadata) == {"x": 1, "y": 2} and len(store) == 3


# -- snapshot / restore ----------------------------------------------------------------------------------------------


def random_ops(store: MemoryStore, rng: np.random.Generator, sentences: list[str], n: int) -> list:
    """Apply n random add/add_many/update/delete/search operations and record every result."""
    out: list = []
    for _ in range(n):
        op = rng.integers(6)
        ids = store.ids()
        if op == 0 or not ids:
            out.append(store.add(sentences[rng.integers(len(sentences))], metadata={"r": int(rng.integers(3))}))
        elif op == 1:
            out.append(store.add_many([sentences[i] for i in rng.integers(len(sentences), size=3)]))
        elif op == 2:
            out.append(store.update(ids[rng.integers(len(ids))], sentences[rng.integers(len(sentences))]))
        elif op == 3:
            out.append(store.delete(ids[rng.integers(len(ids))]))
        else:
            q = sentences[rng.integers(len(sentences))]
            out.append(store.search(q, top_k=int(rng.integers(1, 12))))
            out.append(store.search(q, top_k=3, metadata_filter={"r": [0, 1]}))
    out.append(store.stats())
    return out


def test_restore_replays_exactly_even_where_search_is_approximate():
    """After restore, every later add/update/delete/search returns exactly what the original store returns."""
    sentences = [f"{a} {b} {c}" for a in FACTS for b in ("river", "king", "city", "war") for c in range(8)]
    # A sparse graph and a tiny ef make results depend on the graph itself, so equality proves the graph is replayed.
    config = StoreConfig(M=4, ef_construction=8, ef_search=4, initial_capacity=8)
    original = MemoryStore(config=config)
    random_ops(original, np.random.default_rng(3), sentences, 150)
    snap = pickle.loads(pickle.dumps(original.snapshot()))
    replica = MemoryStore(config=StoreConfig())
    replica.restore(snap)
    again = MemoryStore()
    again.restore(snap)
    assert replica.stats() == original.stats() and replica.config == config
    results = [random_ops(s, np.random.default_rng(4), sentences, 300) for s in (original, replica, again)]
    assert results[0] == results[1] == results[2]
    assert original.stats()["rebuilds"] >= 1 and original.stats()["capacity"] > 8


def test_snapshot_is_independent_of_later_changes():
    """Changing the store after snapshot() does not change the snapshot, and restore undoes the changes."""
    store = filled(5)
    snap = store.snapshot()
    items_before = list(store)
    store.update("m_0001", "changed")
    store.delete("m_0002")
    store.add("extra")
    store.restore(snap)
    assert list(store) == items_before and store.stats()["id_counter"] == 5


def test_copy_index_is_an_independent_copy_of_the_graph():
    """copy_index() gives hnswlib's graph of the store (same slots, ef and neighbours); changing it changes nothing."""
    store = filled(12)
    raw = store.copy_index(100)
    assert (raw.element_count, raw.ef, raw.max_elements) == (12, store.stats()["ef"], 100)
    query = store.embedder([FACTS[2] + " (note 2)"])
    labels, _ = raw.knn_query(query, k=1)
    assert store.ids()[int(labels[0, 0])] == "m_0003" == store.search(FACTS[2] + " (note 2)", top_k=1)[0].item.id
    raw.mark_deleted(2)
    raw.add_items(query, [12])
    assert store.search(FACTS[2] + " (note 2)", top_k=1)[0].item.id == "m_0003" and len(store) == 12


def test_restore_rejects_foreign_snapshots_and_leaves_the_store_unchanged():
    """A non-snapshot or a snapshot of another dim raises StoreFormatError and the target keeps its items."""
    target = filled(3)
    with pytest.raises(StoreFormatError, match=r"expects a dict from MemoryStore.snapshot\(\), got dict"):
        target.restore({"items": []})
    other = MemoryStore(HashingEmbedder(dim=64))
    other.add("x")
    with pytest.raises(StoreFormatError, match=r"holds 64-d embeddings from embedder 'hash-64', but .* gives 256-d"):
        target.restore(other.snapshot())
    with pytest.raises(StoreFormatError, match=r"the index state must be the mapping of hnswlib fields"):
        target.restore({**target.snapshot(), "index": b"not a pickle"})
    with pytest.raises(StoreFormatError, match=r"'cur_element_count' must be 3 here, got 1; it does not match its"):
        target.restore({**target.snapshot(), "index": filled(1).snapshot()["index"]})
    assert target.ids() == ["m_0001", "m_0002", "m_0003"] and len(target.search("note", top_k=5)) == 3


# -- persistence -----------------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    """A loaded store has the same items, settings, counters and search results, and ef is set again."""
    config = StoreConfig(ef_search=77, initial_capacity=4, dedup=DedupConfig("merge"))
    store = MemoryStore(config=config)
    store.add_many([f"{f} #{i}" for i, f in enumerate(FACTS * 3)], metadatas=[{"i": i} for i in range(18)])
    store.delete("m_0004")
    store.update("m_0005", "Ünïcödé content \ud800 with a lone surrogate", metadata={"z": [1, {"y": None}]})
    store.save(tmp_path / "store")
    loaded = MemoryStore.load(tmp_path / "store")
    assert list(loaded) == list(store) and loaded.config == config
    assert loaded.stats() | {"ef": 0} == store.stats() | {"ef": 0} and loaded.stats()["ef"] == 77
    queries = ["Nobel prize", "capital", "Ünïcödé content"]
    assert loaded.search_many(queries, top_k=5) == store.search_many(queries, top_k=5)
    assert loaded.add("Paris is the capital of France. #2").action == "merged"


def test_save_writes_manifest_and_one_generation(tmp_path):
    """The directory holds manifest.json and one generation of files; older ones are removed, others kept."""
    store = filled(4)
    (tmp_path / "README.txt").write_text("mine")
    store.save(tmp_path)
    store.add("more")
    store.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "README.txt",
        "index-000002.bin",
        "items-000002.json",
        "manifest.json",
        "store.lock",
        "vectors-000002.npy",
    ]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == "agemem-gym-memory-store" and manifest["version"] == 2
    assert manifest["checksum"] == manifest_digest(manifest) and list(manifest)[-1] == "checksum"
    assert (manifest["space"], manifest["dim"], manifest["embedder"], manifest["id_counter"]) == (
        "cosine",
        256,
        "hash-256",
        5,
    )
    assert manifest["labels"] == {f"m_000{i}": i - 1 for i in range(1, 6)}
    assert set(manifest["files"]["index"]) == {"name", "bytes", "sha256"}


def test_save_into_a_file_path_is_a_config_error(tmp_path):
    """Saving to a path that is a file raises ConfigError."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"'path' must be a directory"):
        filled(1).save(tmp_path / "f")


def _fail_writing(prefix: str, exc: BaseException):
    """A GenerationWriter.write that raises ``exc`` for files whose name starts with ``prefix``."""
    original = _store_files.GenerationWriter.write

    def write(self, name, chunks):
        if name.startswith(prefix):
            raise exc
        return original(self, name, chunks)

    return write


def _short_on_disk(prefix: str):
    """A GenerationWriter.seal that first cuts the file short on disk, as a full disk does behind hnswlib's back."""
    original = _store_files.GenerationWriter.seal

    def seal(self, name, size, sha256=None):
        if name.startswith(prefix):
            path = self.directory / name
            path.write_bytes(path.read_bytes()[: size // 2])
        return original(self, name, size, sha256)

    return seal


def _truncating_save_index(index, path):
    index.save_index(str(path))
    path.write_bytes(path.read_bytes()[:-100])  # what ENOSPC does to hnswlib's unchecked ofstream


SAVE_FAULTS = {
    "read_only": (
        "os.open",
        lambda real: lambda *a, **k: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied")),
    ),
    "index_written_short": ("_save_index", lambda real: _truncating_save_index),
    "index_short_on_disk": ("seal", lambda real: _short_on_disk("index-")),
    "vectors_disk_full": ("write", lambda real: _fail_writing("vectors-", OSError(errno.ENOSPC, "No space left"))),
    "vectors_short_on_disk": ("seal", lambda real: _short_on_disk("vectors-")),
    "items_disk_full": ("write", lambda real: _fail_writing("items-", OSError(errno.ENOSPC, "No space left"))),
    "manifest_disk_full": ("write", lambda real: _fail_writing("manifest", OSError(errno.ENOSPC, "No space left"))),
    "manifest_replace": ("os.replace", lambda real: lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O"))),
    "interrupted": ("write", lambda real: _fail_writing("items-", KeyboardInterrupt())),
}


@pytest.mark.parametrize("fault", list(SAVE_FAULTS))
def test_a_failed_save_leaves_nothing_behind_and_later_saves_work(tmp_path, monkeypatch, fault):
    """Whatever fails mid-save (a read-only directory, a full disk, a short write hnswlib does not report, an
    interrupt), the error is clear, the directory holds exactly the previous store, and the next save works."""
    store = filled(3)
    store.save(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    store.add("written after the first save")
    where, make = SAVE_FAULTS[fault]
    target = {
        "os.open": (_store_files.os, "open"),
        "os.replace": (_store_files.os, "replace"),
        "_save_index": (memory_index, "_save_index"),
        "seal": (_store_files.GenerationWriter, "seal"),
        "write": (_store_files.GenerationWriter, "write"),
    }[where]
    monkeypatch.setattr(*target, make(getattr(*target)))
    expected = KeyboardInterrupt if fault == "interrupted" else StoreWriteError
    with pytest.raises(expected) as err:
        store.save(tmp_path)
    monkeypatch.undo()
    if expected is StoreWriteError:
        assert "Nothing of this save is left behind" in str(err.value) and isinstance(err.value, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert MemoryStore.load(tmp_path).ids() == ["m_0001", "m_0002", "m_0003"]
    one = MemoryStore()
    one.add("a one-item store")
    one.save(tmp_path)
    assert MemoryStore.load(tmp_path).ids() == ["m_0001"]


def test_read_only_message_names_the_cause(tmp_path, monkeypatch):
    """A save into a read-only directory says so (no FileNotFoundError from deep inside)."""
    filled(1).save(tmp_path)
    monkeypatch.setattr(_store_files.os, "open", SAVE_FAULTS["read_only"][1](None))
    with pytest.raises(
        StoreWriteError, match=r"could not write the lock file 'store.lock': the directory is not writable"
    ):
        filled(2).save(tmp_path)


def corrupt(directory: Path, how: str) -> None:
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    vectors = directory / manifest["files"]["vectors"]["name"]
    if how == "truncate":
        data = vectors.read_bytes()
        vectors.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        data = bytearray(vectors.read_bytes())
        data[-1] ^= 0xFF
        vectors.write_bytes(bytes(data))
    elif how == "delete":
        vectors.unlink()
    elif how == "edited":  # one label changed by hand: the seal breaks
        manifest["labels"]["m_0001"] = 2
        manifest_path.write_text(json.dumps(manifest))
    elif how == "no_dim":  # the edits below re-seal the manifest, as a forger would: deeper checks still hold
        del manifest["dim"]
        manifest_path.write_text(json.dumps(seal_manifest(manifest)))
    elif how == "bad_labels":
        manifest["labels"]["m_0001"] = 99
        manifest_path.write_text(json.dumps(seal_manifest(manifest)))
    elif how == "capacity":
        manifest["capacity"] = 10**12
        manifest_path.write_text(json.dumps(seal_manifest(manifest)))
    elif how == "deep":
        manifest_path.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "version":
        manifest["version"] = 1
        manifest_path.write_text(json.dumps(manifest))
    elif how == "not_json":
        manifest_path.write_text("{not json")
    elif how == "no_manifest":
        manifest_path.unlink()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncate", r"the vectors file 'vectors-000001.npy' has \d+ bytes, the manifest says \d+ \(truncated"),
        ("flip", r"the vectors file 'vectors-000001.npy' has sha256 [0-9a-f]{12}\.\.\., the manifest says"),
        ("delete", r"the vectors file 'vectors-000001.npy' is missing"),
        ("edited", r"manifest.json fails its checksum \(recorded 'sha256:[0-9a-f]{12}', computed 'sha256:.*edited or"),
        ("no_dim", r"manifest.json lacks the field 'dim'"),
        ("bad_labels", r"labels must be distinct ints in \[0, next_label=4\)"),
        ("capacity", r"capacity must be in \[next_label=4, 1048576\] .* got 1000000000000"),
        ("deep", r"manifest.json is nested too deeply to be a manifest"),
        ("version", r"format version must be 2, got 1; open it with the agemem-gym version that wrote it"),
        ("not_json", r"manifest.json is not valid JSON"),
        ("no_manifest", r"no manifest.json found; pass the directory given to MemoryStore.save\(\)"),
    ],
)
def test_corrupt_store_raises_and_leaves_the_target_unchanged(tmp_path, how, message):
    """Every kind of damage raises StoreFormatError with a clear message, and load_into changes nothing."""
    filled(4).save(tmp_path)
    corrupt(tmp_path, how)
    target = filled(2)
    before = (list(target), target.stats())
    with pytest.raises(StoreFormatError, match=message):
        target.load_into(tmp_path)
    with pytest.raises(StoreFormatError):
        MemoryStore.load(tmp_path)
    assert (list(target), target.stats()) == before
    assert target.add("still works").item.id == "m_0003"


def test_a_label_moved_onto_a_tombstone_is_refused_even_when_resealed(tmp_path):
    """A forged label map that points a live item at a deleted slot is a StoreFormatError, not a KeyError later."""
    store = filled(5)
    store.delete("m_0002")  # slot 1 becomes a tombstone (1 of 5: below the rebuild ratio)
    store.save(tmp_path)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["labels"]["m_0003"] = 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreFormatError, match="fails its checksum"):
        MemoryStore.load(tmp_path)
    path.write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(StoreFormatError, match=r"a live item's slot is deleted in the index"):
        MemoryStore.load(tmp_path)


def _same_store(a: MemoryStore, b: MemoryStore) -> bool:
    queries = ["Nobel prize", "capital of France", "bridge 1841", "note 3"]
    return (
        [i.to_dict() for i in a] == [i.to_dict() for i in b]
        and a.config == b.config
        and a.stats() == b.stats()
        and a.search_many(queries, top_k=4) == b.search_many(queries, top_k=4)
    )


def test_every_single_byte_manifest_mutation_is_refused_or_changes_nothing(tmp_path):
    """Each byte of the manifest, changed five ways (about 5,500 mutations), either raises StoreFormatError or
    loads a store identical to the saved one (items, settings, counters, search results): never anything else."""
    store = filled(6, dedup=DedupConfig("merge"), ef_search=64)
    store.delete("m_0002")
    store.save(tmp_path)
    path = tmp_path / "manifest.json"
    original = path.read_bytes()
    target = MemoryStore("hash")
    refused = same = 0
    fd = os.open(path, os.O_RDWR)
    try:
        for i, b in enumerate(original):
            for new in {b ^ 0x01, b ^ 0x02, b ^ 0x10, b ^ 0x40, ord(" ") if b != 0x20 else ord("0")}:
                os.pwrite(fd, bytes([new]), i)  # one byte changed in place
                try:
                    target.load_into(tmp_path)
                except StoreFormatError:
                    refused += 1
                    continue
                assert _same_store(target, store), (i, original[max(0, i - 20) : i + 20], new)
                same += 1
            os.pwrite(fd, bytes([b]), i)
    finally:
        os.close(fd)
    assert refused + same > 5000 and same > 0  # whitespace edits load the same store


def test_any_byte_changed_in_a_data_file_is_refused(tmp_path):
    """A byte changed anywhere in the index, vectors or items file (64 positions each) is a StoreFormatError."""
    filled(6).save(tmp_path)
    target = MemoryStore("hash")
    for name in sorted(p.name for p in tmp_path.glob("*-000001.*")):
        path = tmp_path / name
        data = path.read_bytes()
        for i in np.linspace(0, len(data) - 1, 64).astype(int).tolist():
            path.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
            with pytest.raises(StoreFormatError, match="corrupted or altered"):
                target.load_into(tmp_path)
        path.write_bytes(data)
    target.load_into(tmp_path)
    assert len(target) == 6


def test_dim_mismatch_on_load_names_both_dims_and_the_fix(tmp_path):
    """Loading with an embedder of another dim raises StoreFormatError naming both dims and the fix."""
    filled(2).save(tmp_path)
    with pytest.raises(StoreFormatError) as err:
        MemoryStore.load(tmp_path, embedder=HashingEmbedder(dim=64))
    assert str(err.value) == (
        f"memory store at {str(tmp_path)!r} holds 256-d embeddings from embedder 'hash-256', but this store's "
        "embedder 'hash-64' gives 64-d vectors; open it with the embedder it was saved with"
    )


def test_other_embedder_name_with_same_dim_warns(tmp_path):
    """Loading with a different embedder of the same dim loads but warns."""
    filled(2).save(tmp_path)
    with pytest.warns(UserWarning, match=r"made with embedder 'hash-256' but is opened with 'callable:fn'"):

        def fn(texts):
            return HashingEmbedder(dim=256, ngram_range=(1, 1))(texts)

        MemoryStore.load(tmp_path, embedder=CallableEmbedder(fn, dim=256))


def test_empty_store_round_trips(tmp_path):
    """An empty store (and one emptied by deletes) saves and loads."""
    MemoryStore().save(tmp_path / "a")
    assert len(MemoryStore.load(tmp_path / "a")) == 0
    store = filled(2)
    store.delete("m_0001")
    store.delete("m_0002")
    store.save(tmp_path / "b")
    loaded = MemoryStore.load(tmp_path / "b")
    assert len(loaded) == 0 and loaded.add("x").item.id == "m_0003"


def test_path_may_be_str_or_pathlike(tmp_path):
    """save and load accept str paths as well as Path objects."""
    filled(2).save(str(tmp_path / "s"))
    assert len(MemoryStore.load(os.fspath(tmp_path / "s"))) == 2


# -- recall against exact search on real text -------------------------------------------------------------------------


def recall_at_k(store: MemoryStore, queries: np.ndarray, vectors: np.ndarray, k: int = 5) -> float:
    """recall@k of the store's hnswlib search against exact search; items tied with the k-th count as hits."""
    exact = queries @ vectors.T  # (Q, N)
    kth = np.sort(exact, axis=1)[:, -k]
    pos = {mid: i for i, mid in enumerate(store.ids())}
    hits = 0
    for row, found in enumerate(store.search_vectors(queries, top_k=k)):
        hits += sum(exact[row, pos[h.item.id]] >= kth[row] - 1e-6 for h in found)
    return hits / (k * len(queries))


def check_recall(tmp_path: Path, embedder, sentences: list[str], queries: list[str], n: int) -> None:
    vectors = embedder(sentences[:n])
    store = MemoryStore(embedder)
    store.add_many(sentences[:n])
    q = embedder(queries)
    assert store.stats()["exact_fallbacks"] == 0
    assert recall_at_k(store, q, vectors) >= 0.99
    store.save(tmp_path / "s")
    loaded = MemoryStore.load(tmp_path / "s", embedder=embedder)
    assert recall_at_k(loaded, q, vectors) >= 0.99
    assert loaded.search_vectors(q[:50], top_k=5) == store.search_vectors(q[:50], top_k=5)


@pytest.mark.parametrize("n", [1000, 10000])
def test_hashing_recall_at_5_vs_exact_search(tmp_path, hotpot_sentences, hotpot_records, n):
    """hnswlib recall@5 against exact search on hashing embeddings of real HotpotQA sentences is >= 0.99."""
    questions = [r["question"] for r in hotpot_records[: 300 if n == 1000 else 500]]
    check_recall(tmp_path, HashingEmbedder(), hotpot_sentences, questions, n)


def test_minilm_recall_at_5_at_1k(tmp_path, minilm, hotpot_sentences, hotpot_records):
    """hnswlib recall@5 against exact search on MiniLM embeddings of 1k real sentences is >= 0.99."""
    check_recall(tmp_path, minilm, hotpot_sentences, [r["question"] for r in hotpot_records[:100]], 1000)


@pytest.mark.slow
def test_minilm_recall_at_5_at_10k(tmp_path, minilm, hotpot_sentences, hotpot_records):
    """hnswlib recall@5 against exact search on MiniLM embeddings of 10k real sentences is >= 0.99."""
    check_recall(tmp_path, minilm, hotpot_sentences, [r["question"] for r in hotpot_records[:500]], 10000)


class _Boom:
    """Runs code when unpickled: a snapshot must never get this far."""

    def __reduce__(self):
        return (os.system, ("echo unpickled > /dev/null",))


def test_restore_unpickles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot's index is hnswlib's plain state; restore works with pickle disabled and refuses a pickle blob."""
    store = filled(5)
    snap = store.snapshot()
    assert all(isinstance(v, (int, float, bool, str, np.ndarray)) for v in snap["index"].values())

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("restore unpickled its input")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    replica = MemoryStore("hash")
    replica.restore(snap)
    assert replica.ids() == store.ids()
    for bad in (pickle.dumps(_Boom()), {**snap["index"], "data_level0": _Boom()}):
        with pytest.raises(StoreFormatError, match="index"):
            replica.restore({**snap, "index": bad})


_FULL_DISK_CHILD = """
import json, os, resource, signal, sys
from agemem_gym.errors import StoreWriteError
from agemem_gym.memory import MemoryStore
directory = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, writes fail with EFBIG instead of killing us
big = MemoryStore("hash")
big.add_many([f"fact {i} about topic {i % 7}" for i in range(400)])
small = MemoryStore("hash")
small.add("one fact")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))  # no file may grow past 64 KiB: a full disk
out = {}
try:
    big.save(directory)
    out["big"] = "saved"
except StoreWriteError as exc:
    out["big"] = "StoreWriteError: " + str(exc)
except Exception as exc:
    out["big"] = f"{type(exc).__name__}: {exc}"
out["after_big"] = sorted(os.listdir(directory))
small.save(directory)  # a one-item store still fits
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
out["after_small"] = sorted(os.listdir(directory))
out["loaded"] = MemoryStore.load(directory).ids()
print(json.dumps(out))
"""


def test_a_real_short_write_is_caught_and_cleaned_up(tmp_path):
    """Under a 64 KiB file-size limit (how a full disk looks to hnswlib, which never checks its writes) a large
    save fails with StoreWriteError and leaves nothing behind; a one-item save then succeeds and loads."""
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["big"].startswith("StoreWriteError: ") and "short or failed write" in out["big"], out["big"]
    assert [n for n in out["after_big"] if n != "store.lock"] == []
    assert [n for n in out["after_small"] if n != "store.lock"] == [
        "index-000001.bin",
        "items-000001.json",
        "manifest.json",
        "vectors-000001.npy",
    ]
    assert out["loaded"] == ["m_0001"]


_READ_ONLY_CHILD = """
import sys
from agemem_gym.errors import StoreWriteError
from agemem_gym.memory import MemoryStore
store = MemoryStore("hash")
store.add("a fact")
try:
    store.save(sys.argv[1])
except StoreWriteError as exc:
    print("StoreWriteError:", exc)
except Exception as exc:
    print(type(exc).__name__ + ":", exc)
"""


def test_a_real_read_only_directory_is_a_clear_store_write_error(tmp_path):
    """Saving into a directory the process cannot write raises StoreWriteError saying so, and the store saved
    there before still loads (as root the save runs as 'nobody', since root writes anywhere)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="agemem-ro-"))
    try:
        base.chmod(0o755)
        directory = base / "store"
        filled(2).save(directory)
        directory.chmod(0o555)
        kwargs: dict = {}
        if os.geteuid() == 0:
            kwargs = {"user": 65534, "group": 65534, "env": {**os.environ, "HOME": str(base)}}
        try:
            done = subprocess.run(
                [sys.executable, "-c", _READ_ONLY_CHILD, str(directory)],
                capture_output=True,
                text=True,
                timeout=120,
                **kwargs,
            )
        except PermissionError:
            pytest.skip("running as root, and the interpreter is not reachable as user nobody to drop root")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("StoreWriteError:") and "not writable" in done.stdout, done.stdout
        assert MemoryStore.load(directory).ids() == ["m_0001", "m_0002"]
    finally:
        directory.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_save_never_writes_through_a_planted_temp_symlink(tmp_path):
    """A symlink planted as manifest.json.tmp is replaced, not written through: nothing outside changes."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    directory = tmp_path / "store"
    directory.mkdir()
    (directory / "manifest.json.tmp").symlink_to(outside)
    filled(2).save(directory)
    assert outside.read_text() == "precious"
    assert MemoryStore.load(directory).ids() == ["m_0001", "m_0002"]
    assert not (directory / "manifest.json.tmp").exists()


def test_a_cleanup_error_after_the_commit_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    """Once the new manifest is in place the save has succeeded: failing to delete old files only warns."""
    store = filled(2)
    store.save(tmp_path)
    store.add("third")
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self.name.endswith("-000001.bin"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.warns(UserWarning, match=r"saved, but could not remove the old file 'index-000001.bin'"):
        store.save(tmp_path)
    monkeypatch.undo()
    assert MemoryStore.load(tmp_path).ids() == ["m_0001", "m_0002", "m_0003"]
    store.save(tmp_path)  # the next save sweeps it
    assert not (tmp_path / "index-000001.bin").exists()


# -- one writer per directory ----------------------------------------------------------------------------------------


def test_a_held_lock_makes_a_second_save_fail_at_once(tmp_path):
    """While another writer holds store.lock, save raises StoreLockedError naming the fix and writes nothing."""
    filled(2).save(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    held = _store_files.writer_lock(tmp_path, "other writer")
    with held, pytest.raises(StoreLockedError, match=r"another save into this directory is in progress.*wait for it"):
        filled(3).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and "store.lock" in before
    assert MemoryStore.load(tmp_path).ids() == ["m_0001", "m_0002"]


def _racing_stores() -> tuple[MemoryStore, MemoryStore]:
    a, b = MemoryStore("hash"), MemoryStore("hash")
    a.add_many([f"store A fact {i}" for i in range(40)])
    b.add_many([f"store B note {i}" for i in range(25)])
    return a, b


def _check_one_store(directory: Path, stores: tuple[MemoryStore, MemoryStore], outcomes: list[str]) -> None:
    assert set(outcomes) <= {"saved", "locked"} and "saved" in outcomes, outcomes
    loaded = MemoryStore.load(directory)
    assert [i.content for i in loaded] in ([i.content for i in s] for s in stores)
    generations = {m.group(2) for m in map(persistence.GEN_FILE_RE.match, os.listdir(directory)) if m}
    assert len(generations) == 1


@pytest.fixture
def no_fsync(monkeypatch):
    """Durability is not what these tests race on: skip fsync so that 40 trials take a second, not several."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def _outcome(action) -> str:
    try:
        action()
        return "saved"
    except StoreLockedError:
        return "locked"
    except Exception as exc:
        return repr(exc)


def _thread_trial(directory: Path, stores: tuple[MemoryStore, MemoryStore]) -> tuple[list[str], list[object]]:
    """Two threads save ``stores`` into ``directory`` and a third loads it, all released by one barrier."""
    barrier = threading.Barrier(3)
    outcomes: list[str] = []
    loads: list[object] = []

    def save(store: MemoryStore) -> None:
        barrier.wait()
        outcomes.append(_outcome(lambda: store.save(directory)))

    def load() -> None:
        barrier.wait()
        try:
            loads.append(len(MemoryStore.load(directory)))
        except Exception as exc:
            loads.append(repr(exc))

    threads = [threading.Thread(target=save, args=(s,)) for s in stores] + [threading.Thread(target=load)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, loads


def test_two_threads_saving_into_one_directory_never_lose_the_store(tmp_path, no_fsync):
    """40 trials of two threads saving different stores into one directory at once, with a third thread loading:
    every save succeeds or is refused as locked, every load succeeds, and one whole store is left."""
    stores = _racing_stores()
    for trial in range(40):
        directory = tmp_path / f"t{trial}"
        stores[trial % 2].save(directory)  # a previous store to protect
        outcomes, loads = _thread_trial(directory, stores)
        assert loads[0] in (40, 25), loads
        _check_one_store(directory, stores, outcomes)


def _save_in_child(store: MemoryStore, directory: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(_outcome(lambda: store.save(directory)))


def test_two_processes_saving_into_one_directory_never_lose_the_store(tmp_path, no_fsync):
    """10 trials of two processes saving different stores into one directory at once: one whole store is left."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    stores = _racing_stores()
    for trial in range(10):
        directory = tmp_path / f"p{trial}"
        stores[trial % 2].save(directory)
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_save_in_child, args=(s, str(directory), barrier, results)) for s in stores]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
        _check_one_store(directory, stores, [results.get(timeout=10) for _ in procs])


# -- save, load, continue --------------------------------------------------------------------------------------------


def test_a_loaded_store_continues_exactly_like_the_saved_one(tmp_path):
    """After save(), the original and a store loaded from it take the same 5,000 adds (and updates and deletes)
    and give identical top-10 results for 300 queries: hnswlib's unsaved level generator is reset in both. The
    small, approximate graph makes any divergence show (before the fix, 279 of 300 results differed)."""
    config = StoreConfig(M=4, ef_construction=32, ef_search=10)
    original = MemoryStore("hash", config=config)
    original.add_many([f"fact number {i} about topic {i % 37} and item {i * 7 % 101}" for i in range(300)])
    for mid in ("m_0003", "m_0050", "m_0077"):
        original.delete(mid)
    original.save(tmp_path)
    loaded = MemoryStore.load(tmp_path)
    more = [f"later note {i} on subject {i % 53} with detail {i * 11 % 97}" for i in range(5000)]
    for store in (original, loaded):
        for start in range(0, len(more), 500):
            store.add_many(more[start : start + 500])
        store.update("m_0010", "an updated fact about subject 7")
        store.delete("m_0100")
    queries = [f"subject {i % 53} detail {i * 3 % 97}" for i in range(300)]
    assert loaded.search_many(queries, top_k=10) == original.search_many(queries, top_k=10)
    assert loaded.stats() == original.stats()
