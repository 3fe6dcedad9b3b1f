"""The learning demo's setting: recall questions, the behaviour mixture that teaches the warm start, and the
per-stage tool counts the demo reports (fast; the demo itself is the slow test in test_learning.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401  (registers the ids)
from agemem_gym.envs.synthetic import SyntheticConfig, make_synthetic_suite
from agemem_gym.errors import ConfigError
from agemem_gym.trainers.learning_demo import Behaviours, recall_setting
from agemem_gym.trainers.plots import MEMORY_PANELS, plot_metrics


def _play(env: gym.Env[str, str], policy: Any, seed: int) -> dict[str, Any]:
    obs, info = env.reset(seed=seed)
    policy.reset(info)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        done = terminated or truncated
    episode: dict[str, Any] = info["episode"]
    return episode


def test_recall_questions_ask_for_two_birthplaces_stated_in_the_gold_paragraphs() -> None:
    suite = make_synthetic_suite(20, seed=0, difficulty="easy", config=SyntheticConfig(recall_ratio=1.0))
    for task in suite:
        assert task.qtype == "recall" and task.question.startswith("Where were ") and task.question.endswith(" born?")
        towns = task.answer.split(" and ")
        assert len(towns) == 2 and towns[0] != towns[1]
        for fact, town in zip(task.supporting_facts, towns):
            assert fact.text.endswith(f" was born in {town}.")
            gold = next(p for p in task.paragraphs if p.title == fact.title)
            assert gold.sentences[fact.sent_idx].strip() == fact.text
            assert fact.title in task.question


def test_recall_ratio_zero_leaves_the_suite_as_it_was() -> None:
    """No extra random draw at recall_ratio = 0: every existing task id keeps its content."""
    before = make_synthetic_suite(30, seed=3, difficulty="medium")
    after = make_synthetic_suite(30, seed=3, difficulty="medium", config=SyntheticConfig(recall_ratio=0.0))
    assert [t.to_dict() for t in before] == [t.to_dict() for t in after]


def test_suite_config_accepts_a_mapping_and_names_unknown_fields() -> None:
    env = gym.make("AgeMem-Synthetic-v0", n_tasks=5, suite_config={"recall_ratio": 1.0})
    assert all(t.qtype == "recall" for t in env.unwrapped.suite)  # type: ignore[attr-defined]
    env.close()
    with pytest.raises(ConfigError, match="recall_rate"):
        gym.make("AgeMem-Synthetic-v0", n_tasks=5, suite_config={"recall_rate": 1.0})
    with pytest.raises(ConfigError, match="recall_ratio"):
        SyntheticConfig(recall_ratio=1.5)


def test_using_memory_is_the_only_way_to_answer_and_it_pays() -> None:
    """Every coin on 'use': full memory quality, retrieval before the answer, the right answer, the highest R;
    every coin on 'skip': nothing stored, no answer, R of the no_memory baseline's order."""
    env = gym.make("AgeMem-Synthetic-v0", n_tasks=16, **recall_setting())
    use = [_play(env, Behaviours(1.0, 1.0, 1.0), seed) for seed in range(8)]
    skip = [_play(env, Behaviours(0.0, 0.0, 0.0), seed) for seed in range(8)]
    store_only = [_play(env, Behaviours(1.0, 0.0, 0.0), seed) for seed in range(8)]
    env.close()
    for e in use:
        assert e["task_score"] == 1.0 and e["memory_quality"]["f1"] == 1.0 and e["retrieved_before_answer"]
        assert e["tool_counts_by_stage"][0]["Add_memory"] == 2 and e["tool_counts_by_stage"][2]["Retrieve_memory"] == 1
        assert e["tool_counts_by_stage"][1]["Filter_context"] == 1
    for e in skip:
        assert e["task_score"] == 0.0 and e["memory_quality"]["f1"] == 0.0 and not e["retrieved_before_answer"]
        assert sum(sum(stage.values()) for stage in e["tool_counts_by_stage"]) == 0
    mean = lambda eps: sum(e["R"] for e in eps) / len(eps)  # noqa: E731
    assert mean(use) > mean(store_only) + 0.3 > mean(skip) + 0.3


def test_the_mixture_flips_each_coin_per_episode_and_is_seeded() -> None:
    env = gym.make("AgeMem-Synthetic-v0", n_tasks=40, **recall_setting())
    a, b = Behaviours(seed=5), Behaviours(seed=5)
    runs = [(_play(env, a, s), _play(env, b, s)) for s in range(40)]
    env.close()
    assert all(x["tool_counts_by_stage"] == y["tool_counts_by_stage"] for x, y in runs)
    coins = {(x["tool_counts_by_stage"][0]["Add_memory"] > 0, x["retrieved_before_answer"]) for x, _ in runs}
    assert coins == {(False, False), (False, True), (True, False), (True, True)}  # independent of each other
    stored = sum(x["tool_counts_by_stage"][0]["Add_memory"] > 0 for x, _ in runs)
    assert 8 <= stored <= 32
    with pytest.raises(ValueError, match="p_store"):
        Behaviours(p_store=2.0)


def test_memory_panels_draw_every_tool_key(tmp_path: Path) -> None:
    rows = [
        {
            "update": u,
            "eval/memory/f1": 0.1 * u,
            "eval/memory/tool/Add_memory": u,
            "eval/memory/tool/Retrieve_memory": 1,
        }
        for u in range(3)
    ]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = plot_metrics(metrics, tmp_path / "memory.png", MEMORY_PANELS)
    assert out.stat().st_size > 1000


def test_word_tokenizer_makes_every_world_name_one_token_and_survives_a_save(tmp_path: Path) -> None:
    from agemem_gym.envs.synthetic import name_vocabulary
    from agemem_gym.trainers.models import load_model, tiny_model, word_tokenizer

    tok = word_tokenizer([*name_vocabulary(), "was", "born", "in"])
    suite = make_synthetic_suite(10, seed=1, difficulty="easy", config=SyntheticConfig(recall_ratio=1.0))
    for task in suite:  # a world the vocabulary was not built from: every name word is still one token
        for fact in task.supporting_facts:
            words = fact.text.rstrip(".").split(" ")
            ids = tok(fact.text, add_special_tokens=False)["input_ids"]
            assert len(ids) == 2 * len(words)  # each word one token, each space one, and the full stop
            assert tok.decode(ids) == fact.text
    odd = 'naïve "quotes" {"content": 12} \u2013 tabs\tand\nnewlines'
    assert tok.decode(tok(odd, add_special_tokens=False)["input_ids"]) == odd  # bytes for what is not a word
    model = tiny_model(seed=0, tokenizer=tok, hidden_size=64)
    assert model.config.vocab_size == len(tok) and model.config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    _, loaded = load_model(str(tmp_path))  # transformers' Qwen2 tokenizer class would rebuild it byte by byte
    text = suite[0].supporting_facts[0].text
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    with pytest.raises(ValueError, match="ASCII letters"):
        word_tokenizer(["two words"])


def test_rename_names_redraws_every_name_consistently_and_keeps_the_rest() -> None:
    """Renamed records keep their wording and stay coherent (the stored sentence is still the context's), while
    the names are new; suffixes such as 'Works' and ordinary words are left alone."""
    import numpy as np

    from agemem_gym.envs.synthetic import name_vocabulary
    from agemem_gym.trainers import sft
    from agemem_gym.trainers.learning_demo import rename_names

    names = name_vocabulary(suffixes=False)
    assert "Works" not in names and "Works" in name_vocabulary()
    env = gym.make("AgeMem-Synthetic-v0", n_tasks=4, **recall_setting())
    records = sft.collect_pairs(env, Behaviours(1.0, 1.0, 1.0), list(env.unwrapped.suite.task_ids)[:4])  # type: ignore[attr-defined]
    env.close()
    known = set(names)
    mask = lambda text: re.sub(r"[A-Za-z]+", lambda m: "#" if m.group(0) in known else m.group(0), text)  # noqa: E731
    texts = lambda record: [m["content"] for m in record["messages"]]  # noqa: E731
    rng = np.random.default_rng(0)
    changed = 0
    for record in records:
        out = rename_names(record, names, rng)
        assert [m["role"] for m in out["messages"]] == [m["role"] for m in record["messages"]]
        assert out["messages"][0] == record["messages"][0]  # the system prompt holds no name
        if "Add_memory" in record["response"]:
            stored = json.loads(out["response"].split("<tool_call>")[1].split("</tool_call>")[0])[0]
            assert stored["arguments"]["content"] in out["messages"][-1]["content"]  # still a sentence of the context
            changed += stored["arguments"]["content"] not in record["messages"][-1]["content"]
        for before, after in zip([record["response"], *texts(record)], [out["response"], *texts(out)]):
            assert mask(before) == mask(after)  # only name words differ
    assert changed >= 6  # 8 stored sentences, each with new names (a collision with the old name is 1 in 13,000)
    assert rename_names(records[0], names, np.random.default_rng(3)) == rename_names(
        records[0], names, np.random.default_rng(3)
    )


def test_copy_accuracy_scores_the_copied_text_of_each_copying_turn() -> None:
    """A random model copies nothing; the probe finds two Add_memory turns and one answer after retrieval per task
    and ignores every other turn."""
    from agemem_gym.trainers import sft
    from agemem_gym.trainers.learning_demo import copy_accuracy
    from agemem_gym.trainers.models import load_model

    env = gym.make("AgeMem-Synthetic-v0", n_tasks=3, suite_seed=1, **recall_setting())
    records = sft.collect_pairs(env, Behaviours(1.0, 1.0, 1.0), list(env.unwrapped.suite.task_ids))  # type: ignore[attr-defined]
    env.close()
    model, tok = load_model("tiny")
    result = copy_accuracy(model, tok, records, max_prompt_tokens=256)
    assert result["adds"] == 6 and result["answers"] == 3
    assert result["add_exact"] == 0.0 and result["answer_exact"] == 0.0
    empty = copy_accuracy(model, tok, records[:0])
    assert empty["adds"] == empty["answers"] == 0.0 and math.isnan(empty["add_exact"])
