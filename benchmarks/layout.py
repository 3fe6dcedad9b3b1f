"""What ``report.md`` shows: its sections, each a heading, the prose that says how the figures were measured, and
:class:`~benchmarks.render.Table` s declared over the records (see :mod:`benchmarks.render`)."""

from __future__ import annotations

from benchmarks.render import Col, Pivot, Ratio, Section, Table

__all__ = ["SECTIONS"]

_API = {"series": "api", "metric": "latency"}
_LAT = {"metric": "latency"}

TARGETS = Section(
    "Targets",
    "Issue 7's targets (the API ratio tightened to 1.3x by issue 13), reported, never asserted. The API ratio is "
    "the whole tool call (parsing the action, validating, embedding the text, the store's exact re-scoring of "
    "hnswlib's k + 16 candidates, rendering the tool message) over the raw hnswlib call given the same embedder "
    "output, precomputed; the env-step median runs over every step of the "
    "episodes, about half of which are cheap answers, so the memory-tool steps are listed by kind in the "
    "environment section.",
    (
        Table(
            ("target",),
            (
                Col("measured", {"metric": "measured"}, how="unit"),
                Col("excl. embedder", {"metric": "excl_embed"}, how="unit"),
                Col("with embedder", {"metric": "with_embed"}, how="unit"),
                Col("status", {"metric": "measured"}, "status", "text"),
            ),
            {"benchmark": "target"},
        ),
    ),
)

MEMORY = Section(
    "Memory operations through the tool API",
    "API = one agent turn through `parse_action` → `execute` (validation, dispatch to the store or the context) → "
    "`render_results`. Raw = the hnswlib call on a copy of the store's own graph with the same vectors and ef "
    "(`knn_query`, `add_items`, `add_items` on an existing label, `mark_deleted`); for the context tools, the "
    "library call without the API (`Context.summarize`, the summariser, the similarity on precomputed vectors). "
    "The API's embedder is the library default (LRU cache) and every timed text is new to it; *API excl. "
    "embedder* subtracts the time measured inside the embedder during each call. Stores at small N use replicas "
    "so that ADD/DELETE never move a store by more than 20% of N. numpy's BLAS runs on one thread here (hnswlib "
    "answers a query on one thread; a multi-threaded exact-search baseline left spinning threads that slowed the "
    "calls interleaved with it).",
    (
        Table(
            ("embedder", "model", "dim", "calls", "burn_in"),
            (Col("corpus embedding s", {"metric": "embed_corpus"}),),
            {"benchmark": "embedders"},
            labels=("embedder", "model", "dim", "timed calls per op", "burn-in calls"),
        ),
        Table(
            ("op",),
            (
                Col("API median µs", _API),
                Col("API p99 µs", _API, "p99"),
                Col("API ops/s", _API, "per_s"),
                Col("API excl. embedder µs", {"series": "api_excl_embed"}),
                Col("raw µs", {"series": "raw"}),
                Col("exact numpy µs", {"series": "exact"}),
                Col("embedder alone µs", {"series": "embed"}),
                Col("API / raw", _API, "ratio", "ratio"),
                Col("API excl. embedder / raw", {"series": "api_excl_embed"}, "ratio", "ratio"),
                Ratio("API / exact", {"series": "api"}, {"series": "exact"}),
                Col("errors", {"metric": "errors"}, how="int"),
            ),
            {"benchmark": "memory_ops"},
            split=("embedder", "size"),
            caption="**{embedder}, {size} items**",
        ),
        Table(
            ("embedder", "size"),
            (Col("index rebuilds while timing", {"metric": "rebuilds_while_timing"}, how="int"),),
            {"benchmark": "memory_ops", "metric": "rebuilds_while_timing"},
            labels=("embedder", "items"),
        ),
    ),
)

RECALL = Section(
    "Recall against exact search",
    "HotpotQA questions as queries; recall@k counts returned items whose exact score reaches the exact k-th best "
    "(ties count). The raw index is a copy of the store's own graph at the store's ef; the ef sweep is at the "
    "largest k.",
    (
        Table(
            ("embedder", "size"),
            (
                Col("queries", {"index": "store", "metric": "recall"}, "repeats", "int"),
                Pivot("k", "store recall@{}", {"index": "store", "metric": "recall"}, how="num4"),
                Pivot("k", "raw recall@{}", {"index": "raw", "ef": None}, how="num4"),
                Pivot("ef", "raw, ef {}", {"index": "raw"}, how="num4"),
                Col("exact fallbacks", {"metric": "exact_fallbacks"}, how="int"),
            ),
            {"benchmark": "recall"},
            labels=("embedder", "items"),
        ),
    ),
)

BATCHED = Section(
    "Batched store calls against one at a time",
    "Median µs **per item**: `add_many` / `search_many` (top 5) against a loop of `add` / `search`, and the same "
    "for raw hnswlib and for the embedder alone.",
    (
        Table(
            ("embedder", "size", "call", "batch"),
            (
                Col("store batched", {"series": "store_batch"}),
                Col("store one by one", {"series": "store_loop"}),
                Ratio("speed-up", {"series": "store_loop"}, {"series": "store_batch"}),
                Col("raw batched", {"series": "raw_batch"}),
                Col("raw one by one", {"series": "raw_loop"}),
                Col("embedder batched", {"series": "embed_batch"}),
                Col("embedder one by one", {"series": "embed_loop"}),
            ),
            {"benchmark": "batched"},
            labels=("embedder", "items", "call", "batch"),
        ),
    ),
)

_STEP = {"action": "all", **_LAT}

ENV = Section(
    "Environment cost per step",
    "`{env_id}` driven by the scripted oracle (all six tools) through whole episodes; the store pre-filled with N "
    "corpus memories (restored from a snapshot right after `reset`, untimed). Only `env.step` is timed; the last "
    "step of each episode (it computes the episode summary) and `reset` (which also frees the previous episode's "
    "store) are reported apart, and so is the policy's own time. The second table is the median step µs "
    "excluding the embedder, by what the action did.",
    (
        Table(
            ("size", "context"),
            (
                Col("mean context tokens", {"metric": "context_tokens_mean"}, how="num4"),
                Col("steps", {**_STEP, "series": "step"}, "repeats", "int"),
                Col("step median µs", {**_STEP, "series": "step"}),
                Col("step p99 µs", {**_STEP, "series": "step"}, "p99"),
                Col("excl. embedder µs", {**_STEP, "series": "step_excl_embed"}),
                Col("embedder µs", {**_STEP, "series": "embed"}),
                Col("steps/s", {"metric": "steps_per_s"}),
                Col("last step µs", {**_STEP, "series": "last_step"}),
                Col("reset µs", {**_STEP, "series": "reset"}),
                Col("policy µs", {**_STEP, "series": "policy"}),
            ),
            {"benchmark": "env_step"},
            labels=("store items", "context"),
        ),
        Table(
            ("size", "context"),
            (Pivot("action", "{}", {"series": "step_excl_embed", **_LAT}),),
            {"benchmark": "env_step", "action": lambda a: a not in (None, "all")},
            labels=("store items", "context"),
        ),
    ),
)

VEC = Section(
    "gym.make_vec",
    "`{env_id}` driven by the RAG baseline policy (no privileged access, so it can drive envs in other processes), "
    "empty stores at each reset. Env transitions per second of `step` time (resets, which the vector envs do "
    "inside `step`, count in the time, not as transitions).",
    (
        Table(
            ("variant", "envs"),
            (
                Col("transitions", {"metric": "steps_per_s"}, "repeats", "int"),
                Col("episodes", {"metric": "episodes"}, how="int"),
                Col("steps/s", {"metric": "steps_per_s"}),
                Col("vs one env", {"metric": "steps_per_s"}, "ratio", "ratio"),
                Col("µs per vector step", {"metric": "us_per_vector_step"}),
            ),
            {"benchmark": "make_vec"},
        ),
    ),
)

GROWTH = Section(
    "Growth with the store size",
    "Median latency (µs) by store size and the log-log slope from 1k items up (0: flat, 1: linear in N), for the "
    "API and for raw hnswlib, and for the env step excluding the embedder. `growth.png` plots both, and the "
    "footprint per item.",
    (
        Table(
            ("op",),
            (
                Pivot("size", "{:,}", {"benchmark": "memory_ops", **_API}),
                Col("API slope", {"benchmark": "growth", "series": "api"}, how="slope"),
                Col("raw slope", {"benchmark": "growth", "series": "raw"}, how="slope"),
            ),
            {"benchmark": ("memory_ops", "growth"), "series": ("api", "raw")},
            split=("embedder",),
            caption="**{embedder}** (API median µs by store size)",
        ),
        Table(
            ("context",),
            (
                Pivot("size", "{:,}", {"benchmark": "env_step"}),
                Col("slope from 1k", {"benchmark": "growth"}, how="slope"),
            ),
            {"benchmark": ("env_step", "growth"), "series": "step_excl_embed", "action": ("all", None)},
            caption="**env step, median µs excluding the embedder**",
            split=("series",),
        ),
    ),
)

_FP = (
    ("capacity", "capacity", "int"),
    ("store_bytes_per_item", "store B/item", "num4"),
    ("raw_index_bytes_per_item", "raw hnswlib B/item", "num4"),
    ("vector_matrix_bytes_per_item", "vector matrix B/item", "num4"),
    ("items_and_maps_bytes_per_item", "items + maps B/item", "num4"),
    ("index_file_bytes_per_item", "index file B/item", "num4"),
    ("snapshot_bytes_per_item", "snapshot B/item", "num4"),
    ("build_us_per_item", "build µs/item", "num"),
)

FOOTPRINT = Section(
    "Memory footprint per item",
    "Bytes per live item (`benchmarks/footprint.py`): the store (Python side traced with tracemalloc, plus its "
    "hnswlib graph) against a bare hnswlib index over the same vectors (glibc `mallinfo2` bytes in use). hnswlib "
    "allocates 65,536 mutexes per index (~2.6 MB), which dominates below ~10k items. Capacity grows geometrically, "
    "so the figures include the slack. The build ran under tracemalloc.",
    (
        Table(
            ("embedder", "size"),
            (
                *(Col(h, {"metric": m}, how=how) for m, h, how in _FP[:3]),
                Col("store / raw", {"metric": "store_bytes_per_item"}, "ratio", "ratio"),
                *(Col(h, {"metric": m}, how=how) for m, h, how in _FP[3:]),
            ),
            {"benchmark": "footprint"},
            labels=("embedder", "items"),
        ),
    ),
)

TRAINER = Section(
    "Trainer throughput (CPU)",
    "`agemem_gym.trainers.grpo.main` with the `tiny` / `demo` presets (torch threads: {torch_threads}); rollout "
    "tokens/s = generated tokens over the rollout's wall time (env steps and chat templating included); learning "
    "tokens/s = prompt + response tokens through forward and backward over the update's wall time (reference "
    "log-probs included). Baselines on batches of the same shape, right after: the trainer's sampler alone, "
    "transformers' `generate`, a plain causal-LM forward + backward.",
    (
        Table(
            ("model", "updates", "steady_updates", "envs"),
            (
                Col("rollout tok/s", {"metric": "rollout_tokens_per_s"}),
                Col("policy.generate tok/s", {"metric": "policy_generate_tokens_per_s"}),
                Col("HF generate tok/s", {"metric": "hf_generate_tokens_per_s"}),
                Col("rollout / HF generate", {"metric": "rollout_tokens_per_s"}, "ratio", "ratio"),
                Col("learning tok/s", {"metric": "learn_tokens_per_s"}),
                Col("forward+backward tok/s", {"metric": "forward_backward_tokens_per_s"}),
                Col("learning / forward+backward", {"metric": "learn_tokens_per_s"}, "ratio", "ratio"),
                Col("wall s", {"metric": "wall_s"}),
            ),
            {"benchmark": "trainer"},
            labels=("model", "updates", "steady updates", "envs"),
        ),
    ),
)

PROFILES = Section(
    "Where the time goes (cProfile)",
    "Share of the profiled call's time per callee (the profiler inflates Python-heavy code more than C calls, so "
    "compare with the medians above), then the functions with the most own time. The first table gives each "
    "profile's root and its µs per call under the profiler; the split groups the tree's time by what it is.",
    (
        Table(
            ("profile", "node"),
            (
                Col("calls", {"part": "root"}, "repeats", "int"),
                Col("µs per call (profiled)", {"part": "root"}),
            ),
            {"benchmark": "profile", "part": "root"},
            labels=("profile", "root"),
        ),
        Table(
            ("profile",),
            (Pivot("category", "{}", {"part": "split"}, how="pct"),),
            {"benchmark": "profile", "part": "split"},
        ),
        Table(
            ("order", "node"),
            (Col("calls", show="repeats", how="int"), Col("share", how="pct")),
            {"benchmark": "profile", "part": "tree"},
            split=("profile",),
            caption="**{profile}**: call tree (a node with one callee is folded into it)",
            labels=("#", "callee"),
        ),
        Table(
            ("order", "node"),
            (Col("calls", show="repeats", how="int"), Col("own-time share", how="pct")),
            {"benchmark": "profile", "part": "top"},
            split=("profile",),
            caption="**{profile}**: functions by own time",
            labels=("#", "function"),
        ),
    ),
)

SECTIONS = (TARGETS, MEMORY, RECALL, BATCHED, ENV, VEC, GROWTH, FOOTPRINT, TRAINER, PROFILES)
