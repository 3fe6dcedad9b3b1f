"""Where the time goes: cProfile over a series of calls, summarised as a call tree and the top functions.

The profiler runs only inside the calls (set-ups are not profiled). Its own overhead inflates Python-heavy code
more than C calls (hnswlib, numpy), so the shares show where the time goes, not exact costs: compare them with the
unprofiled medians of the same run.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.records import Record
from benchmarks.timing import Timed

__all__ = ["CATEGORIES", "breakdown", "profile_calls", "records", "summarise_profile"]

_Func = tuple[str, int, str]  # pstats' (file, line, function name)


def _label(func: _Func) -> str:
    file, line, name = func
    if file == "~" or not file:
        return name  # a builtin, e.g. "<method 'knn_query' of 'hnswlib.Index' objects>"
    parts = Path(file).parts
    for anchor in ("agemem_gym", "benchmarks", "envs", "trainers", "site-packages"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + (anchor == "site-packages") :]
            break
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line}({name})"


def _find(stats: dict[_Func, Any], file_suffix: str, name: str) -> _Func | None:
    for func in stats:
        if func[2] == name and func[0].replace("\\", "/").endswith(file_suffix):
            return func
    return None


def _tree(
    callees: dict[_Func, dict[_Func, tuple[float, ...]]],
    root: _Func,
    total: float,
    *,
    depth: int,
    min_share: float,
    seen: frozenset[_Func] = frozenset(),
) -> list[dict[str, Any]]:
    """The callees of ``root`` that take at least ``min_share`` of ``total``, each with its own callees."""
    out = []
    edges = sorted(callees.get(root, {}).items(), key=lambda kv: -kv[1][3])
    for func, (_cc, nc, _tt, ct) in edges:
        if ct < min_share * total or func in seen:
            continue
        node: dict[str, Any] = {"function": _label(func), "calls": int(nc), "cumtime_s": ct, "share": ct / total}
        if depth > 1:
            node["callees"] = _tree(
                callees, func, total, depth=depth - 1, min_share=min_share, seen=seen | {root, func}
            )
        out.append(node)
    return out


def profile_calls(
    fn: Callable[[int], Any] | Timed,
    calls: int,
    *,
    root: tuple[str, str] | None = None,
    top: int = 12,
    depth: int = 12,
    min_share: float = 0.03,
) -> dict[str, Any]:
    """Profile ``fn(i)`` for i in ``range(calls)`` (a :class:`~benchmarks.timing.Timed` runs its set-up
    unprofiled) and summarise it with :func:`summarise_profile`."""
    plan = fn if isinstance(fn, Timed) else Timed(fn)
    prof = cProfile.Profile()
    for i in range(calls):
        if plan.setup is not None:
            plan.setup(i)
        prof.enable()
        plan.run(i)
        prof.disable()
    return {"calls": calls, **summarise_profile(prof, root=root, top=top, depth=depth, min_share=min_share)}


def summarise_profile(
    prof: cProfile.Profile,
    *,
    root: tuple[str, str] | None = None,
    top: int = 12,
    depth: int = 12,
    min_share: float = 0.03,
) -> dict[str, Any]:
    """A profile as a call tree under ``root`` and the functions with the most own time.

    Args:
        prof: A profile that has run.
        root: ``(file suffix, function name)`` of the function whose call tree to report, e.g.
            ``("agemem_gym/env.py", "step")``; None (or not found) reports the tree under every top-level call.
        top: How many functions to list by own time (builtins such as hnswlib's methods included).
        depth: Levels of the call tree.
        min_share: Tree nodes below this share of the root's time are left out.

    Returns:
        ``root``, ``root_calls``, ``total_s_per_call`` (profiled seconds per root call), ``tree`` (each node:
        function, calls, cumtime_s, share of the root's time, callees) and ``top``.
    """
    st = pstats.Stats(prof)
    raw: dict[_Func, Any] = st.stats  # type: ignore[attr-defined]
    callees: dict[_Func, dict[_Func, tuple[float, ...]]] = {}
    for func, (_cc, _nc, _tt, _ct, callers) in raw.items():
        for caller, edge in callers.items():
            callees.setdefault(caller, {})[func] = edge
    total_tt = float(st.total_tt) or 1e-12  # type: ignore[attr-defined]
    root_func = _find(raw, *root) if root is not None else None
    if root_func is not None:
        total, root_calls = float(raw[root_func][3]), int(raw[root_func][1])
        tree = _tree(callees, root_func, total, depth=depth, min_share=min_share)
        label = _label(root_func)
    else:
        total, root_calls, label = total_tt, 1, "(top level)"
        tree = []
        for f in sorted((f for f, v in raw.items() if not v[4]), key=lambda f: -raw[f][3]):
            if raw[f][3] >= min_share * total:
                node = {"function": _label(f), "calls": int(raw[f][1]), "cumtime_s": raw[f][3]}
                node["share"] = raw[f][3] / total
                node["callees"] = _tree(callees, f, total, depth=depth - 1, min_share=min_share)
                tree.append(node)
    own = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "root": label,
        "root_calls": root_calls,
        "total_s_per_call": total / max(root_calls, 1),
        "tree": tree,
        "top": [
            {"function": _label(f), "calls": int(v[1]), "tottime_s": v[2], "share": v[2] / total_tt} for f, v in own
        ],
    }


# Where a profiled call's time goes, by disjoint subtrees: (category, test on a tree node's function label).
CATEGORIES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("hnswlib (C++)", lambda f: "hnswlib" in f),
    ("embedder", lambda f: f.startswith("benchmarks/corpus.py:") and f.endswith("(__call__)")),
    ("parse_action", lambda f: f.endswith("(parse_action)")),
    ("render_results", lambda f: f.endswith("(render_results)")),
    ("info dict", lambda f: f.startswith("agemem_gym/env.py:") and f.endswith("(_info)")),
    ("context render", lambda f: f.startswith("agemem_gym/context.py:") and f.endswith("(render)")),
    ("reward potential", lambda f: f.endswith("(potential)")),
)


def breakdown(tree: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Shares of a profile tree's root time by category (the first matching node on each path counts, with all
    below it); ``other Python`` is the rest: validation, dispatch, bookkeeping, numpy glue."""
    out = dict.fromkeys((c for c, _ in CATEGORIES), 0.0)

    def walk(nodes: Sequence[dict[str, Any]]) -> None:
        for node in nodes:
            for category, match in CATEGORIES:
                if match(node["function"]):
                    out[category] += node["share"]
                    break
            else:
                walk(node.get("callees") or [])

    walk(tree)
    shares = {k: v for k, v in out.items() if v > 0}
    shares["other Python"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def _folded(nodes: Sequence[dict[str, Any]], depth: int, max_depth: int) -> list[tuple[int, str, int, float]]:
    """Tree nodes in depth-first order as (depth, label, calls, share); a node with a single callee is folded
    into one label with it (``a 80% → b 75%``)."""
    out = []
    for node in nodes:
        chain = [node]
        while len(chain[-1].get("callees") or []) == 1:
            chain.append(chain[-1]["callees"][0])
        label = " → ".join(f"`{n['function']}` {n['share'] * 100:.0f}%" for n in chain)
        out.append((depth, label, int(node["calls"]), float(node["share"])))
        if depth + 1 < max_depth:
            out += _folded(chain[-1].get("callees") or [], depth + 1, max_depth)
    return out


def records(summary: dict[str, Any], profile: str, *, max_depth: int = 4, top: int = 8) -> list[Record]:
    """A profile summary as flat records of benchmark ``"profile"``: the µs per root call under the profiler
    (``part="root"``), the split by :data:`CATEGORIES` (``"split"``), the folded call tree in depth-first order
    (``"tree"``: ``order``, ``depth`` and ``node``) and the functions with the most own time (``"top"``)."""
    at = {"profile": profile}
    out = [
        Record("profile", "us_per_call", 1e6 * summary["total_s_per_call"], "us", {**at, "part": "root",
               "node": summary["root"]}, repeats=summary["root_calls"])
    ]  # fmt: skip
    out += [
        Record("profile", "share", v, "", {**at, "part": "split", "category": k})
        for k, v in breakdown(summary["tree"]).items()
    ]
    out += [
        Record(
            "profile",
            "share",
            share,
            "",
            {**at, "part": "tree", "order": i, "depth": d, "node": "· " * d + label},
            repeats=n,
        )
        for i, (d, label, n, share) in enumerate(_folded(summary["tree"], 0, max_depth))
    ]
    out += [
        Record("profile", "own_share", t["share"], "", {**at, "part": "top", "order": i, "node": f"`{t['function']}`"},
               repeats=t["calls"])
        for i, t in enumerate(summary["top"][:top])
    ]  # fmt: skip
    return out
