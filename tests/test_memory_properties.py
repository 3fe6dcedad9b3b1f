"""Property-based tests: the memory store against a plain-Python model with exact numpy search."""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agemem_gym.errors import MemoryNotFoundError
from agemem_gym.memory import MemoryStore, StoreConfig, format_memory_id
from agemem_gym.memory.embedders import HashingEmbedder

EMBEDDER = HashingEmbedder(dim=64)  # narrow, so that collisions and near-ties happen
TAGS = ["a", "b", "c"]

contents = st.text(max_size=30) | st.sampled_from(["river bank", "River bank!", "bank of the river", "", "  "])
json_values = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4) | st.lists(st.integers(0, 2), max_size=2)
)
metadatas = st.none() | st.builds(
    lambda tag, extra: ({"tag": tag} if tag else {}) | extra,
    st.sampled_from([None, *TAGS]),
    st.dictionaries(st.text(max_size=4).filter(lambda k: k != "tag"), json_values, max_size=2),
)
filters = st.none() | st.sampled_from(
    [{"tag": "a"}, {"tag": ["b", "c"]}, {"memory_type": "fact"}, {"type": ["note"]}, {"tag": "a", "type": "note"}]
)


class StoreModel(RuleBasedStateMachine):
    """Drives a MemoryStore and a dict-based model with the same operations and compares them after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore(EMBEDDER, config=StoreConfig(initial_capacity=2, max_tombstone_ratio=0.25))
        self.model: dict[str, dict] = {}  # id -> {"content", "metadata", "memory_type"}, in creation order
        self.counter = 0
        self.tmpdir = tempfile.mkdtemp(prefix="agemem-prop-")

    def teardown(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    @initialize()
    def start_empty(self) -> None:
        assert len(self.store) == 0

    def _model_add(self, content: str, metadata: dict | None, memory_type: str) -> str:
        self.counter += 1
        mid = format_memory_id(self.counter)
        self.model[mid] = {"content": content, "metadata": dict(metadata or {}), "memory_type": memory_type}
        return mid

    @rule(content=contents, metadata=metadatas, memory_type=st.sampled_from(["fact", "note"]))
    def add(self, content: str, metadata: dict | None, memory_type: str) -> None:
        result = self.store.add(content, metadata=metadata, memory_type=memory_type)
        assert result.action == "added"
        assert result.item.id == self._model_add(content, metadata, memory_type)

    @rule(batch=st.lists(st.tuples(contents, metadatas), max_size=4))
    def add_many(self, batch: list[tuple[str, dict | None]]) -> None:
        results = self.store.add_many([c for c, _ in batch], metadatas=[m for _, m in batch])
        assert [r.item.id for r in results] == [self._model_add(c, m, "fact") for c, m in batch]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), content=contents, metadata=metadatas)
    def update(self, data: st.DataObject, content: str, metadata: dict | None) -> None:
        mid = data.draw(st.sampled_from(sorted(self.model)))
        item = self.store.update(mid, content, metadata=metadata)
        entry = self.model[mid]
        entry["content"] = content
        entry["metadata"] = {**entry["metadata"], **(metadata or {})}
        assert (item.id, item.content, dict(item.metadata)) == (mid, content, entry["metadata"])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        mid = data.draw(st.sampled_from(sorted(self.model)))
        assert self.store.delete(mid).content == self.model.pop(mid)["content"]

    @rule(number=st.integers(1, 0x3FFF))
    def unknown_id_raises(self, number: int) -> None:
        mid = format_memory_id(number)
        if mid not in self.model:
            with pytest.raises(MemoryNotFoundError, match=repr(mid)):
                self.store.update(mid, "x")
            with pytest.raises(MemoryNotFoundError):
                self.store.delete(mid)

    @rule(query=contents, top_k=st.integers(1, 12), flt=filters)
    def search(self, query: str, top_k: int, flt: dict | None) -> None:
        hits = self.store.search(query, top_k, metadata_filter=flt)
        scores = self._exact_scores(query, flt)
        want = sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:top_k]
        assert len(hits) == len(want)
        assert len({h.item.id for h in hits}) == len(hits)
        for hit, (wid, wscore) in zip(hits, want):
            # Scores equal to 1e-5; ids equal unless the model's scores tie (then either id is a right answer).
            assert abs(hit.score - wscore) <= 1e-5, (hit, wid, wscore)
            assert hit.item.id == wid or abs(scores[hit.item.id] - wscore) <= 1e-5, (hit, wid, wscore)
            entry = self.model[hit.item.id]
            assert (hit.item.content, dict(hit.item.metadata)) == (entry["content"], entry["metadata"])

    @rule(junk=st.lists(contents, min_size=1, max_size=3))
    def snapshot_restore(self, junk: list[str]) -> None:
        snap = self.store.snapshot()
        self.store.add_many(junk)
        for mid in self.store.ids()[:1]:
            self.store.delete(mid)
        self.store.restore(snap)
        fresh = MemoryStore(EMBEDDER)
        fresh.restore(snap)
        assert list(fresh) == list(self.store)
        self.store = fresh

    @rule()
    def save_load(self) -> None:
        self.store.save(self.tmpdir)
        self.store = MemoryStore.load(self.tmpdir, embedder=EMBEDDER)

    def _exact_scores(self, query: str, flt: dict | None) -> dict[str, float]:
        ids = [mid for mid, e in self.model.items() if flt is None or _model_match(e, flt)]
        if not ids:
            return {}
        vecs = EMBEDDER([self.model[mid]["content"] for mid in ids])  # (n, dim)
        scores = vecs.astype(np.float64) @ EMBEDDER([query])[0].astype(np.float64)
        return dict(zip(ids, scores.tolist()))

    @invariant()
    def same_live_ids(self) -> None:
        assert self.store.ids() == list(self.model)
        assert len(self.store) == len(self.model)
        assert self.store.stats()["id_counter"] == self.counter


def _model_match(entry: dict, flt: dict) -> bool:
    for key, want in flt.items():
        if key in entry["metadata"]:
            have = entry["metadata"][key]
        elif key in ("memory_type", "type"):
            have = entry["memory_type"]
        else:
            return False
        options = want if isinstance(want, list) else [want]
        if not any(type(have) is type(w) and have == w for w in options):
            return False
    return True


StoreModel.TestCase.settings = settings(max_examples=40, stateful_step_count=25)
test_store_matches_the_model = StoreModel.TestCase
