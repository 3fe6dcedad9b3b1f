"""SFT on a mixture of memory behaviours, then GRPO: the smallest run that shows RL teaching *when* memory pays off.

Runs (CPU, minutes):
    python -m agemem_gym.trainers.learning_demo                  # seed 1; prints the held-out memory metrics
    python -m agemem_gym.trainers.learning_demo --seed 2 --num-updates 48
    python -m agemem_gym.trainers.plots runs/learn__1/grpo/metrics.jsonl curves.png   # (written by the run too)

**The setting** (:func:`recall_setting`): ``AgeMem-Synthetic-v0`` with recall questions only ("Where were X and Y
born?", answered "A and B"), easy distractors and short episodes: stage 1 shares the two gold paragraphs, one a
user message; stage 2 one distractor, after the context reset; stage 3 asks the question. The answer is in one
sentence of each stage-1 paragraph and nowhere else, so a policy that did not store those sentences and retrieve
them cannot answer: memory is necessary, and nothing but memory is needed (no reasoning between the hops, which a
model this small could not learn in minutes).

**1. Warm start (SFT).** A random byte-level ``"tiny-128"`` Qwen2 imitates :class:`Behaviours`, a scripted
mixture that knows the protocol and every tool but not when they pay off: in each episode it flips a fair coin for
each of three choices, independently of the task:

- stage 1: store each paragraph's birth sentence with ``Add_memory`` or just acknowledge the paragraph;
- stage 2: drop the distractor with ``Filter_context`` or just acknowledge it;
- stage 3: ``Retrieve_memory`` with the question, then answer from what comes back, or answer "I do not know."

So the warm start uses memory in about half its choices, at random; it learns the formats and the copying
(sentences into ``Add_memory``, towns out of the retrieved memories) from the half where the coins say "use".

**2. Step-wise GRPO** from the warm start (also the frozen KL reference) on the training world (``suite_seed``
0): ``num_updates`` updates of ``groups_per_update`` tasks × ``group_size`` trajectories, sampled at
``temperature``. Nothing tells the policy which choice is right but the env's reward.

**3. Held-out evaluation.** The warm start (update 0) and the policy every ``eval_every`` updates play the same
``eval_tasks`` tasks of another world (``suite_seed`` 1: other names, other towns), sampled at the rollout
temperature from a seeded RNG. Reported: memory-quality F1 of the final store, the share of episodes that called
``Retrieve_memory`` before answering, the task score (answer F1), R(τ) and the tool calls per episode; the same
for the scripted ``no_memory`` baseline on the same tasks. ``curves.png`` plots reward, memory quality and loss;
``memory.png`` the held-out memory use, tool calls per episode and R(τ).

**What it shows today** (seed 1, measured; the README has the table): GRPO cuts failed turns (16 -> 3 truncated
episodes of 64) and raises R(τ) (-0.305 -> +0.031), but memory quality stays at 0 and retrieval before answering
falls (0.28 -> 0.14): the byte-level model learns the formats and where to copy from, not to copy names it has not
seen, so its memories never hold the fact and GRPO learns to avoid the tools. ``tests/test_learning.py`` keeps the
memory claim as an expected failure. ``--tokenizer words`` (every name one token) does not change that: seed 1,
SFT loss 9.56 -> 0.083 on 1,549 turns, held-out MQ 0 at updates 0 and 8 (retrieval before answering 0.39 -> 0.31,
R -0.080 -> +0.015), the stored sentences well formed but naming people and towns that are not in the context
("Mabvel was born in Tevrand." for "Orvgast was born in Eldthil."): it memorises its training turns rather than
learning to attend to the name.

**Making copying the only fit** (issue 12, measured with seed 1, ``--tokenizer words``, ``--max-prompt-tokens
256``, one thread of a 2-core machine shared with other jobs at load 5-9; ``copy_accuracy`` on 16-24 held-out
tasks, the coins forced to "use", so only the copy is scored). SFT episodes from 64 worlds (4 each, 1,549 turns):
after one epoch 0 of 48 stored sentences exact, still training-world names ("Mabwick was born in Eldbry.").
``--sft-renames`` (every record's names redrawn at random, :func:`rename_names`, fresh each pass), 32 worlds x 8
episodes, two epochs: 0 exact (it stores "The"). ``--copy-curriculum 3000`` (short copy turns) renamed, two epochs
of 188 steps of 16 (11 min): loss 0.43 -> 0.41, 0 of 32 stored sentences and 0 of 16 answers exact, but the names
it writes are now random vocabulary words ("Tevdene was born in Halhum."), no longer memorised ones: renaming
removes the memorising, and 376 steps do not grow a copy (induction) circuit in the 2-layer, 128-wide model (a
4-layer one at learning rate 5e-3 was worse: loss 0.77, 0 exact, at step 94, when it was stopped).

**Copy pretraining** (``--induction-steps``, :mod:`agemem_gym.trainers.induction`; measured with seed 1 as above, a
fresh ``--tokenizer words`` model, batch 32, learning rate 3e-3, ``copy_acc`` the whole-vocabulary argmax accuracy
on a fixed batch of the phase). Repeated random name sequences ``x1..xL SEP x1..xL`` (L 10-30, loss on the repeat;
Olsson et al. 2022): an induction phase change, copy accuracy 0.16 at step 600, 0.74 at 700, 0.98 at 800 (a second
run: 0.30 at 800, 0.91 at 900), 0.2-0.4 s a step at load 5-7; then 400 steps of renamed short copy turns
(``--induction-pair-steps``), 0.97 in distribution. Held out (16 tasks, full prompts): 0 of 32 stored sentences and
0 of 16 answers exact; on the short, system-prompt-free form of the same turns it writes the right surname in 6 of 8
but a wrong town ("Zolsor was born in Olis." for "... Tamrik."). With 30% of the sequence tokens drawn from the 32
commonest non-name words (``--induction-common-rate 0.3``, so the copy after a repeated word needs a two-token
match; 0.37 at step 600, 0.81 at 700, 0.97 at 800; 1,500 + 400 steps, 7 min): 1 of 32 stored sentences and 12 of 16
answers exact. Half the tokens from the 4 commonest words (``--induction-common-rate 0.5 --induction-common-words
4``): no sharp change (0.41 at step 400, 0.63 at 1,500), and after the pair phase it writes one fixed sentence
("Bolthal was born in Ithbuk."), 0 of 32 and 0 of 16. The demo's SFT from the rate-0.3 start (renamed x2, 16 worlds
x 8 episodes, 1,544 turns) at its learning rate 3e-3, two epochs (386 steps): 0 of 32 and 3 of 16, the copying lost;
at 3e-4, one epoch (193 steps, 70 s): 3 of 32 and 10 of 16. Towns in stored sentences are still the gap (the surname
is copied, the town after "born in" is not), so GRPO was not run on these warm starts and the options stay off by
default.

The word tokenizer writes each space as its own token ("Gulkel", "_", "was", "_", "born", "_", "in", "_",
"Torruk"), so the town of a stored sentence follows a space, as every name in the context does, while its surname
follows the quote of ``"content": "``: presumably why a one-token match copies the surname and not the town. "was",
"born" and "in" are already among the 32 common words of the rate-0.3 run (they are drawn alone, never next to a
space). Two options make the repeated sequences need a two-token match (measured as above: seed 1, 1,500 + 400
steps, common rate 0.3 over 32 words, then the SFT at 3e-4 for one epoch; 16 held-out tasks). ``--induction-spaces
--induction-phrase-rate 0.1`` (the drawn tokens joined by spaces, each one with chance 0.1 a whole "<Name> was born
in <Town>."; 13 min at load 2): no phase change, ``copy_acc`` 0.58 at step 100 and 0.62 at 1,500 (the spaces and
the phrase's fixed words, not the names), loss 2.57; 0 of 32 stored sentences and 0 of 16 answers exact before the
SFT and after it (SFT loss 4.91 -> 0.64). ``--induction-phrase-rate 0.1`` alone (no spaces between the drawn
tokens, the phrase written with its spaces; 10 min): no phase change either, ``copy_acc`` 0.40 at step 100 and 0.42
at 1,500, loss 3.69; 0 of 32 and 0 of 16 before the SFT and after it (SFT loss 3.81 -> 0.59). Without the phrase
the same recipe had its phase change at steps 600-800 (above); with it none came in 1,500 steps, so mixing copy
turns into the SFT and GRPO were not run on these starts.

With a model that copies, the same experiment is
``--model smollm2 --sft-episodes 40 --sft-epochs 1 --sft-learning-rate 1e-4 --learning-rate 2e-5
--max-prompt-tokens 256 --max-new-tokens 64 --groups-per-update 2 --group-size 4 --micro-batch-size 8
--threads 2`` (5-10 minutes an update on 2 CPU cores).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from agemem_gym.env import SHORT_EPISODE
from agemem_gym.envs.synthetic import name_vocabulary
from agemem_gym.evaluation import evaluate
from agemem_gym.evaluation.agents import answer, make_policy, tool_call
from agemem_gym.trainers import grpo, sft
from agemem_gym.trainers.models import TINY_MODELS, load_model, tiny_model, word_tokenizer
from agemem_gym.trainers.plots import MEMORY_PANELS, plot_metrics, read_metrics

__all__ = [
    "REPORTED",
    "Behaviours",
    "DemoArgs",
    "birth_phrase",
    "copy_accuracy",
    "copy_pair_sampler",
    "easy_short_episodes",
    "initial_model",
    "main",
    "recall_setting",
    "rename_names",
]

ENV_ID = "AgeMem-Synthetic-v0"

# The held-out metrics the demo reports, under their names in metrics.jsonl (eval/ rows) and in the result.
REPORTED: dict[str, str] = {
    "MQ_f1": "eval/memory/f1",
    "retrieve_before_answer": "eval/memory/retrieve_before_answer",
    "task_score": "eval/reward/task_score",
    "R": "eval/reward/mean",
    "truncated_episodes": "eval/rollout/truncated_episodes",
    "action_error_rate": "eval/rollout/action_error_rate",
}


def easy_short_episodes(max_tool_rounds: int = 2) -> dict[str, Any]:
    """Env kwargs: difficulty "easy", the gold paragraphs only in stage 1, one distractor in stage 2, compact prompt."""
    episode = {**SHORT_EPISODE, "max_tool_rounds": max_tool_rounds}
    return {"difficulty": "easy", "episode": episode, "prompt_style": "compact"}


def recall_setting(max_tool_rounds: int = 2) -> dict[str, Any]:
    """:func:`easy_short_episodes` with recall questions only (``SyntheticConfig.recall_ratio = 1``)."""
    return {**easy_short_episodes(max_tool_rounds), "suite_config": {"recall_ratio": 1.0}}


_BIRTH = re.compile(r"[^.\n]*? was born in [^.\n]+\.")
_TOWN = re.compile(r"was born in ([^.\n]+)\.")
_WORD = re.compile(r"[A-Za-z]+")
_SUBJECT = re.compile(r"\n\s*([A-Z][\w'’-]*)")


class Behaviours:
    """The warm start's teacher: every memory behaviour the demo needs, each chosen by a coin flip per episode.

    ``p_store``, ``p_filter``, ``p_retrieve`` are the chances of storing stage 1's birth sentences, filtering
    stage 2's distractor and retrieving before the stage-3 answer. The coins are drawn at each ``reset`` from the
    policy's own generator (seeded), independently of the task: the policy knows *how* to use each tool and never
    *when*. Written for :func:`recall_setting` (it reads birth sentences and towns); elsewhere it still plays
    well-formed turns, storing nothing it cannot find.
    """

    name = "behaviours"

    def __init__(self, p_store: float = 0.5, p_filter: float = 0.5, p_retrieve: float = 0.5, *, seed: int = 0):
        for key, p in (("p_store", p_store), ("p_filter", p_filter), ("p_retrieve", p_retrieve)):
            if isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{key!r} must be a probability in [0, 1], got {p!r}")
        self.p = (float(p_store), float(p_filter), float(p_retrieve))
        self._rng = np.random.default_rng(seed)
        self.store = self.filter = self.retrieve = False

    def reset(self, info: Mapping[str, Any]) -> None:
        draws = self._rng.random(3)
        self.store, self.filter, self.retrieve = (bool(d < p) for d, p in zip(draws, self.p))

    def act(self, observation: str, info: Mapping[str, Any]) -> str:
        messages = info.get("messages", [])
        last = messages[-1] if messages else {"role": "user", "content": observation}
        text, stage = str(last.get("content", "")), info.get("stage")
        if last.get("role") == "tool":  # the tool call of this user turn is done: reply
            if stage == 3:
                towns = _TOWN.findall(text)
                return answer(" and ".join(towns) if towns else "I do not know.", "Found.")
            return answer("Thanks!", "Done.")
        if stage == 1:
            sentence = _BIRTH.search(text)
            if self.store and sentence:
                return tool_call(("Add_memory", {"content": sentence.group(0).strip()}), think="Keep.")
            return answer("Thanks!", "Skip.")
        if stage == 2:
            subject = _SUBJECT.search(text)
            if self.filter and subject:
                return tool_call(("Filter_context", {"criteria": subject.group(1)}), think="Drop.")
            return answer("Thanks!", "Skip.")
        if self.retrieve:  # the question asks where two people were born; so does the query
            return tool_call(("Retrieve_memory", {"query": "born in", "top_k": 2}), think="Look up.")
        return answer("I do not know.", "Guess.")


@dataclass
class DemoArgs:
    """SFT on a behaviour mixture, then step-wise GRPO, on recall tasks; reports held-out memory metrics."""

    seed: int = 1
    """seed of the SFT step (model init, shuffling, the mixture's coins) and of the GRPO run"""
    output_dir: str = "runs"
    """parent folder of the run folder"""
    run_name: str | None = None
    """run folder name; default: learn__{seed}. It holds warm_start/ (the SFT model) and grpo/ (the GRPO run)"""
    model: str = "tiny-128"
    """the model SFT starts from (a tiny random one by default; any name load_model accepts)"""
    tokenizer: Literal["bytes", "words"] = "bytes"
    """for a tiny model: "bytes" keeps its byte-level tokenizer; "words" gives it :func:`word_tokenizer` over the
    synthetic name vocabulary and the words of the SFT turns (every name one token, so copying a name is one step;
    measured with seed 1: it still writes names that are not in its context, MQ 0, see the module docstring)"""
    sft_episodes: int = 256
    """episodes of the behaviour mixture to imitate, per world (each world's first tasks)"""
    sft_worlds: int = 1
    """training worlds the SFT episodes come from: suite_seed 0, then 2, 3, ... (1 is the held-out world)"""
    sft_renames: int = 0
    """train on this many copies of each SFT record, each with its names redrawn at random (:func:`rename_names`),
    so that names can be fitted only by copying them from the context; 0: the records as played"""
    copy_curriculum: int = 0
    """also train on this many short copy turns (a stage-1 paragraph and its ``Add_memory``, a retrieval and the
    answer read off it, from worlds 1000, 1001, ...; renamed like the rest when ``sft_renames`` > 0)"""
    induction_steps: int = 0
    """copy pretraining before SFT (:mod:`agemem_gym.trainers.induction`, ``tokenizer="words"`` only): this many
    steps on repeated random name sequences ``x1 ... xL SEP x1 ... xL``, the loss on the repeat (Olsson et al.
    2022: induction heads form in a phase change on such text); 0: none"""
    induction_pair_steps: int = 0
    """then this many steps on short copy turns (a paragraph and its ``Add_memory``, a retrieval and its answer; no
    system prompt), their names redrawn at every step"""
    induction_common_rate: float = 0.0
    """share of the repeated sequences' tokens drawn from the ``induction_common_words`` most frequent non-name
    words of the SFT turns ("was", "in", ...), so that the copy must match two tokens, as after "born in"; 0: names
    only"""
    induction_common_words: int = 32
    """how many frequent words ``induction_common_rate`` draws from (fewer: more ambiguous one-token matches)"""
    induction_phrase_rate: float = 0.0
    """chance that each token of a repeated sequence is instead a whole "<Name> was born in <Town>." (names drawn
    from the pool), so that the town in the repeat must be keyed on the name before the shared "was born in"; 0:
    none"""
    induction_spaces: bool = False
    """join the repeated sequences' tokens with the space token, as the word tokenizer writes text (every name then
    follows a space, so the copy must match two tokens back, as "in _ Town" needs); False: no spaces"""
    induction_learning_rate: float = 3e-3
    """AdamW learning rate of the copy pretraining (constant after a 5% warm-up)"""
    copy_probe_tasks: int = 16
    """held-out tasks (suite_seed 1) on whose copying turns :func:`copy_accuracy` measures the warm start"""
    warm_start: str | None = None
    """a model folder to start GRPO from instead of running SFT (e.g. the warm_start/ of an earlier run)"""
    lora_rank: int = 0
    """GRPO LoRA rank (0: train every weight; SFT always trains every weight)"""
    sft_epochs: int = 4
    """passes over the scripted turns"""
    sft_learning_rate: float = 3e-3
    """SFT AdamW learning rate (decays linearly to 0)"""
    num_updates: int = 24
    """GRPO updates"""
    learning_rate: float = 1e-4
    """GRPO AdamW learning rate"""
    beta: float = 0.1
    """KL penalty coefficient to the warm start (paper: 0.1)"""
    groups_per_update: int = 4
    """B: tasks per GRPO update"""
    group_size: int = 4
    """K: trajectories per task"""
    max_tool_rounds: int = 2
    """tool or malformed turns allowed per user message; one more truncates the episode"""
    max_prompt_tokens: int = 384
    """prompts keep their last this many tokens (bytes, for the tiny model) in SFT and GRPO alike"""
    max_new_tokens: int = 128
    """most tokens per agent turn"""
    temperature: float = 0.7
    """sampling temperature of the rollouts and the evaluations (the policy GRPO optimises)"""
    eval_tasks: int = 64
    """held-out tasks the warm start, the trained policy and the no_memory baseline play"""
    eval_every: int = 8
    """evaluate every this many GRPO updates (and at update 0, the warm start)"""
    micro_batch_size: int = 32
    """GRPO samples per forward/backward (lower it for a larger model)"""
    threads: int = 1
    """torch CPU threads (the tiny model runs fastest on one; the documented numbers used one); 0: torch's default"""
    progress: bool = True
    """show GRPO's progress bar"""


def initial_model(args: DemoArgs, records: list[dict[str, Any]], folder: Path) -> str:
    """The model SFT starts from: ``args.model`` itself, or for a tiny model with ``tokenizer="words"`` a random
    one over :func:`word_tokenizer` (the name vocabulary plus every word seen twice in ``records``), saved in
    ``folder``."""
    if args.tokenizer == "bytes" or args.model not in TINY_MODELS:
        return args.model
    counts: Counter[str] = Counter()
    for record in records:
        for text in (record["response"], *(str(m.get("content", "")) for m in record["messages"])):
            counts.update(_WORD.findall(text))
    tok = word_tokenizer([*name_vocabulary(), *(w for w, n in counts.items() if n >= 2)])
    shape = TINY_MODELS[args.model]
    model = tiny_model(seed=args.seed, tokenizer=tok, hidden_size=shape["hidden_size"], num_layers=shape["num_layers"])
    if args.induction_steps or args.induction_pair_steps:
        known = set(name_vocabulary())
        frequent = [w for w, _ in counts.most_common() if w not in known and len(w) > 1][: args.induction_common_words]
        history = _pretrain_copying(args, model, tok, frequent)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "copy_pretraining.json").write_text(json.dumps(history, indent=1))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def copy_pair_sampler(
    tokenizer: Any, records: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> Callable[[np.random.Generator, int], list[tuple[list[int], list[int]]]]:
    """A function ``(rng, n) -> n (prompt ids, response ids) pairs``: records drawn at random from ``records``,
    each with its names redrawn (:func:`rename_names`) and encoded as SFT encodes it (:func:`~agemem_gym.trainers.
    sft.encode_pair`), for the second phase of :func:`~agemem_gym.trainers.induction.pretrain_copying`."""
    from agemem_gym.trainers.sft import encode_pair

    if not records:
        raise ValueError("copy_pair_sampler expects at least one record, got none")

    def draw(rng: np.random.Generator, n: int) -> list[tuple[list[int], list[int]]]:
        picks = rng.integers(len(records), size=n)
        return [encode_pair(tokenizer, rename_names(records[int(i)], names, rng)) for i in picks]

    return draw


def birth_phrase(tokenizer: Any) -> list[int]:
    """The ids of "<Name> was born in <Town>." as the tokenizer writes them, -1 for each name slot: the ``phrase``
    template of :func:`~agemem_gym.trainers.induction.repeated_sequence` (a word tokenizer: every name one
    token)."""
    a, b = name_vocabulary(suffixes=False)[:2]
    ids = [int(i) for i in tokenizer(f"{a} was born in {b}.", add_special_tokens=False).input_ids]
    slots = {int(i) for i in tokenizer.convert_tokens_to_ids([a, b])}
    if len(slots) != 2 or sum(i in slots for i in ids) != 2:
        raise ValueError("birth_phrase expects a word tokenizer that writes each name as one token")
    return [-1 if i in slots else i for i in ids]


def _pretrain_copying(args: DemoArgs, model: Any, tok: Any, frequent: Sequence[str]) -> list[dict[str, Any]]:
    """Copy pretraining of a fresh word-tokenizer model (the induction options of :class:`DemoArgs`); ``frequent``
    are the common words of the repeated sequences."""
    from agemem_gym.trainers.induction import pretrain_copying

    names = name_vocabulary(suffixes=False)
    pool = sorted({int(i) for i in tok.convert_tokens_to_ids(names)} - {tok.unk_token_id})
    draw = None
    if args.induction_pair_steps:
        turns = _copy_turns(recall_setting(args.max_tool_rounds), 512, seed=args.seed)
        draw = copy_pair_sampler(tok, turns, names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        history = pretrain_copying(
            model,
            pool,
            sep_id=int(tok("\n", add_special_tokens=False).input_ids[0]),
            pad_id=int(tok.pad_token_id),
            steps=args.induction_steps,
            pair_steps=args.induction_pair_steps,
            draw_pairs=draw,
            learning_rate=args.induction_learning_rate,
            common=[int(i) for i in tok.convert_tokens_to_ids(list(frequent))],
            common_rate=args.induction_common_rate,
            phrase=birth_phrase(tok) if args.induction_phrase_rate > 0 else (),
            phrase_rate=args.induction_phrase_rate,
            space_id=int(tok(" ", add_special_tokens=False).input_ids[0]) if args.induction_spaces else None,
            seed=args.seed,
        )
    for row in history:
        print(f"copy pretraining: {row}", file=sys.stderr)
    return history


def rename_names(record: Mapping[str, Any], names: Sequence[str], rng: np.random.Generator) -> dict[str, Any]:
    """A copy of a step record with every name word replaced by a random word of ``names``, consistently within
    the record (its messages and its response), so that the record still reads as one story.

    A word is a name word when it is in ``names`` (e.g. :func:`~agemem_gym.envs.synthetic.name_vocabulary` with
    ``suffixes=False``). The warm start trains on such copies: who was born where is then drawn afresh for every
    record, so no association between names can be memorised, and the only way to fit a stored sentence or an
    answer is to copy it from the context. Every name word also turns up in training, as a pretrained model has
    seen every name before, without any world's facts.

    >>> record = {"messages": [{"role": "user", "content": "Orin Talvesk was born in Pelon."}],
    ...           "response": "Talvesk was born in Pelon."}
    >>> out = rename_names(record, ["Orin", "Talvesk", "Pelon", "Velmor", "Korstad", "Ebor"], np.random.default_rng(0))
    >>> out["response"] == out["messages"][0]["content"].split(" ", 1)[1]
    True
    """
    known = set(names)
    mapping: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        if word not in known:
            return word
        if word not in mapping:
            mapping[word] = names[int(rng.integers(len(names)))]
        return mapping[word]

    out = dict(record)
    out["messages"] = [{**m, "content": _WORD.sub(swap, str(m.get("content", "")))} for m in record["messages"]]
    out["response"] = _WORD.sub(swap, str(record["response"]))
    return out


_CONTENT_OPEN = '"content": "'


def copy_accuracy(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], *, max_prompt_tokens: int | None = None
) -> dict[str, float]:
    """How well a model copies from its context, on the turns of ``records`` where a :class:`Behaviours` policy
    copied: greedy, given the response up to the copied text (so the coins' choice is not measured, only the
    copy). ``add_exact``: share of ``Add_memory`` contents that are exactly the sentence the teacher stored;
    ``answer_exact``: share of answers after a retrieval that name exactly the retrieved towns; ``adds`` and
    ``answers`` count the turns.
    """
    from agemem_gym.trainers.policy import Sampling, generate
    from agemem_gym.trainers.sft import encode_pair

    cases: dict[str, list[tuple[list[int], str]]] = {"add": [], "answer": []}
    for record in records:
        response = str(record["response"])
        if _CONTENT_OPEN in response and "Add_memory" in response:
            kind, prefix, rest = "add", *response.split(_CONTENT_OPEN, 1)
            prefix += _CONTENT_OPEN
        elif record["messages"][-1].get("role") == "tool" and record.get("stage") == 3 and "<answer>" in response:
            kind, prefix, rest = "answer", *response.split("<answer>", 1)
            prefix += "<answer>"
        else:
            continue
        prompt, _ = encode_pair(tokenizer, dict(record), max_prompt_tokens=max_prompt_tokens)
        prefix_ids = list(tokenizer(prefix, add_special_tokens=False).input_ids)
        cases[kind].append((prompt + prefix_ids, rest))
    out: dict[str, float] = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for kind, items in cases.items():
            stop = '"' if kind == "add" else "</answer>"
            if not items:
                out[f"{kind}_exact"], out[f"{kind}s"] = float("nan"), 0.0
                continue
            turns = generate(model, tokenizer, [p for p, _ in items], Sampling(max_new_tokens=32, greedy=True))
            hits = [t.text.split(stop, 1)[0] == want.split(stop, 1)[0] for t, (_, want) in zip(turns, items)]
            out[f"{kind}_exact"] = float(np.mean(hits))
            out[f"{kind}s"] = float(len(hits))
    model.train(was_training)
    return out


def _copy_turns(setting: dict[str, Any], n: int, *, seed: int) -> list[dict[str, Any]]:
    """``n`` short copy turns: each ``Add_memory`` turn of an always-storing, always-retrieving teacher with the
    paragraph as its only message, and each answer after a retrieval with the question, the call and the result,
    from worlds 1000, 1001, ... (never the held-out world 1)."""
    teacher, out, world = Behaviours(1.0, 0.0, 1.0, seed=seed + 1000), [], 1000
    while len(out) < n:
        env = gym.make(ENV_ID, **setting, suite_seed=world, n_tasks=8)
        for r in sft.collect_pairs(env, teacher, list(env.unwrapped.suite.task_ids), seed=seed):  # type: ignore[attr-defined]
            if "Add_memory" in r["response"]:
                out.append({**r, "messages": r["messages"][-1:]})
            elif r["stage"] == 3 and r["messages"][-1]["role"] == "tool":
                out.append({**r, "messages": r["messages"][-3:]})
        env.close()
        world += 1
    return out[:n]


def _probe_copying(args: DemoArgs, setting: dict[str, Any], warm_start: Path) -> dict[str, float]:
    """:func:`copy_accuracy` of the warm start on the copying turns of ``copy_probe_tasks`` held-out tasks."""
    if args.copy_probe_tasks <= 0:
        return {}
    env = gym.make(ENV_ID, **setting, suite_seed=1, n_tasks=args.copy_probe_tasks)
    ids = list(env.unwrapped.suite.task_ids)  # type: ignore[attr-defined]
    records = sft.collect_pairs(env, Behaviours(1.0, 0.0, 1.0, seed=0), ids, seed=0)
    env.close()
    model, tok = load_model(str(warm_start))
    result = copy_accuracy(model, tok, records, max_prompt_tokens=args.max_prompt_tokens)
    print(f"warm start copies (held out): {result}", file=sys.stderr)
    return result


def _baseline(policy: str, env_kwargs: dict[str, Any], eval_kwargs: dict[str, Any], tasks: int) -> dict[str, float]:
    """A scripted policy on the held-out tasks, under the names of :data:`REPORTED`."""
    env = gym.make(ENV_ID, **{**env_kwargs, **eval_kwargs})
    try:
        ids = list(env.unwrapped.suite.task_ids)[:tasks]  # type: ignore[attr-defined]
        result = evaluate(env, make_policy(policy, env.unwrapped), task_ids=ids, seed=0, progress=False)
    finally:
        env.close()
    s = result.summary
    return {
        "MQ_f1": s["MQ_f1"],
        "retrieve_before_answer": s["retrieved_before_answer"],
        "task_score": s["task_score"],
        "R": s["R"],
        "truncated_episodes": s["truncated"] * s["episodes"],
        "action_error_rate": float("nan"),
    }


def main(args: DemoArgs) -> dict[str, Any]:
    """Run SFT then GRPO; returns the held-out metrics of the warm start, the trained policy and ``no_memory``."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.output_dir) / (args.run_name or f"learn__{args.seed}")
    warm_start = Path(args.warm_start) if args.warm_start else run_dir / "warm_start"
    setting = recall_setting(args.max_tool_rounds)
    eval_kwargs = {"suite_seed": 1}
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---- warm start: imitate the behaviour mixture on the training world(s) ----
    if args.warm_start is None:
        records: list[dict[str, Any]] = []
        teacher = Behaviours(seed=args.seed)
        for world in [0, *range(2, args.sft_worlds + 1)]:
            env = gym.make(ENV_ID, **setting, suite_seed=world, n_tasks=max(args.sft_episodes, 1))
            task_ids = list(env.unwrapped.suite.task_ids)[: args.sft_episodes]  # type: ignore[attr-defined]
            records += sft.collect_pairs(env, teacher, task_ids, seed=args.seed)
            env.close()
        records += _copy_turns(setting, args.copy_curriculum, seed=args.seed)
        if args.sft_renames > 0:
            names, rng = name_vocabulary(suffixes=False), np.random.default_rng(args.seed)
            records = [rename_names(r, names, rng) for _ in range(args.sft_renames) for r in records]
        sft.write_jsonl(records, run_dir / "sft_records.jsonl")
        sft.main(
            sft.SFTArgs(
                out=str(warm_start),
                model=initial_model(args, records, run_dir / "init"),
                data=str(run_dir / "sft_records.jsonl"),
                env_kwargs=json.dumps(setting),
                epochs=args.sft_epochs,
                learning_rate=args.sft_learning_rate,
                max_prompt_tokens=args.max_prompt_tokens,
                seed=args.seed,
            )
        )
    sft_s = time.perf_counter() - started
    copying = _probe_copying(args, setting, warm_start)

    # ---- GRPO from the warm start, evaluated on the held-out world along the way ----
    grpo.main(
        grpo.preset(
            "tiny",
            exp_name="learn",
            model=str(warm_start),
            seed=args.seed,
            output_dir=str(run_dir),
            run_name="grpo",
            env_kwargs=json.dumps(setting),
            eval_env_kwargs=json.dumps(eval_kwargs),
            num_updates=args.num_updates,
            groups_per_update=args.groups_per_update,
            group_size=args.group_size,
            learning_rate=args.learning_rate,
            beta=args.beta,
            max_prompt_tokens=args.max_prompt_tokens,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            eval_greedy=False,
            micro_batch_size=args.micro_batch_size,
            eval_tasks=args.eval_tasks,
            eval_every=args.eval_every,
            checkpoint_every=0,
            lora_rank=args.lora_rank,
            progress=args.progress,
        )
    )
    metrics = run_dir / "grpo" / "metrics.jsonl"
    plot_metrics(metrics, run_dir / "grpo" / "memory.png", MEMORY_PANELS)

    # ---- report: held-out metrics before and after, and the no_memory baseline on the same tasks ----
    rows = read_metrics(metrics)
    evals = [r for r in rows if REPORTED["R"] in r]
    trained = [r for r in rows if "perf/update_s" in r]
    result: dict[str, Any] = {
        "warm_start": {name: evals[0][key] for name, key in REPORTED.items()},
        "trained": {name: evals[-1][key] for name, key in REPORTED.items()},
        "no_memory": _baseline("no_memory", setting, eval_kwargs, args.eval_tasks),
        "warm_start_copy": copying,
        "curve": {int(r["update"]): {name: r[key] for name, key in REPORTED.items()} for r in evals},
        "tools_per_episode": {
            stage: {k.rsplit("/", 1)[1]: v for k, v in row.items() if k.startswith("eval/memory/tool/")}
            for stage, row in (("warm_start", evals[0]), ("trained", evals[-1]))
        },
        "cost": {
            "sft_s": sft_s,
            "total_s": time.perf_counter() - started,
            **{
                f"{key.split('/', 1)[1]}_median": float(np.median([r[key] for r in trained]))
                if trained
                else float("nan")
                for key in ("perf/rollout_s", "perf/update_s", "perf/rollout_tokens_per_s", "perf/learn_tokens_per_s")
            },
            "peak_mem_mb": max((r["perf/peak_mem_mb"] for r in trained), default=float("nan")),
        },
    }
    result["gain"] = {name: result["trained"][name] - result["warm_start"][name] for name in REPORTED}
    table = [f"held-out ({args.eval_tasks} tasks of suite_seed 1, T={args.temperature}):"]
    table.append(f"{'':>12} " + " ".join(f"{n:>22}" for n in REPORTED))
    for who in ("warm_start", "trained", "no_memory"):
        table.append(f"{who:>12} " + " ".join(f"{result[who][n]:>22.3f}" for n in REPORTED))
    print("\n".join(table), file=sys.stderr)
    print(f"curves: {run_dir / 'grpo' / 'curves.png'}, {run_dir / 'grpo' / 'memory.png'}", file=sys.stderr)
    (run_dir / "result.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    import tyro

    main(tyro.cli(DemoArgs))
