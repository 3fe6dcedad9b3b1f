"""Long-term memory: the store the LTM tools act on (DESIGN.md §3, §7), one concern per module.

========================  ===========================================================================================
module                    what it owns
========================  ===========================================================================================
:mod:`.items`             :class:`MemoryItem` and its frozen JSON metadata, :class:`SearchHit`, :class:`AddResult`, ids
:mod:`.config`            :class:`StoreConfig`: hnswlib parameters, growth and rebuild rules, the dedup policy
:mod:`.embedders`         text -> unit vectors: the hashing embedder (default), MiniLM, any callable
:mod:`.index`             :class:`~.index.CosineIndex`, the only module that imports hnswlib
:mod:`.dedup`             :class:`DedupConfig` and the near-duplicate checks run on add
:mod:`.search`            exact re-scoring and ranking of hnswlib's candidates, metadata filters
:mod:`.state`             :class:`~.state.StoreState`, the contents a store swaps whole
:mod:`.store`             :class:`MemoryStore`: ids, items and vectors over the index; add/update/delete/search
:mod:`.persistence`       snapshots and saved stores, and the one validate-then-build path that reads both back
:mod:`.files`             the crash-safe files of a saved store: the sealed manifest and verified writes
========================  ===========================================================================================

Everything a user needs is importable from here, as before the package was split.

>>> store = MemoryStore("hash")
>>> store.add("The Orvel Bridge was built in 1841.", metadata={"topic": "bridges"}).item.id
'm_0001'
>>> _ = store.add("Paris is the capital of France.", memory_type="geo")
>>> [hit.item.id for hit in store.search("When was the Orvel Bridge built?", top_k=1)]
['m_0001']
>>> [hit.item.id for hit in store.search("bridge", metadata_filter={"type": "geo"})]
['m_0002']
>>> store.delete("m_0001").content
'The Orvel Bridge was built in 1841.'
>>> len(store), store.add("A new fact.").item.id
(1, 'm_0003')
"""

from __future__ import annotations

from agemem_gym.memory.config import StoreConfig
from agemem_gym.memory.dedup import DedupConfig
from agemem_gym.memory.items import AddResult, MemoryItem, SearchHit, format_memory_id
from agemem_gym.memory.persistence import STORE_FORMAT, STORE_FORMAT_VERSION
from agemem_gym.memory.store import MemoryStore

__all__ = [
    "STORE_FORMAT",
    "STORE_FORMAT_VERSION",
    "AddResult",
    "DedupConfig",
    "MemoryItem",
    "MemoryStore",
    "SearchHit",
    "StoreConfig",
    "format_memory_id",
]
