"""The public API is pinned: every module's ``__all__`` is exactly what users (and DESIGN.md) rely on.

A change here is an API change: update this table on purpose, and the README or docs with it.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC: dict[str, set[str]] = {
    "agemem_gym": {"ENV_IDS", "__version__", "register_envs"},
    "agemem_gym.env": {"AgeMemEnv", "EpisodeConfig"},
    "agemem_gym.memory": {
        "AddResult",
        "DedupConfig",
        "MemoryItem",
        "MemoryStore",
        "STORE_FORMAT",
        "STORE_FORMAT_VERSION",
        "SearchHit",
        "StoreConfig",
        "format_memory_id",
    },
    "agemem_gym.protocol": {
        "Action",
        "ActionError",
        "ErrorCode",
        "ProtocolConfig",
        "ToolCall",
        "display_text",
        "parse_action",
    },
    "agemem_gym.text": {
        "STOPWORDS",
        "content_words",
        "has_lone_surrogates",
        "keyword_containment",
        "replace_lone_surrogates",
        "split_sentences",
        "words",
    },
    "agemem_gym.jsonl": {"json_line"},
    "agemem_gym.trust": {"check_env_id"},
    "agemem_gym.tools": {
        "TOOL_ALIASES",
        "TOOL_NAMES",
        "TOOL_SPECS",
        "ToolResult",
        "ToolRuntime",
        "ToolSettings",
        "ToolSpec",
        "canonical_tool_name",
        "execute",
        "render_results",
        "tool_schemas",
    },
    "agemem_gym.rewards": {
        "AnswerMetric",
        "EpisodeLedger",
        "Judge",
        "PenaltyConfig",
        "REWARD_PRESETS",
        "RewardWeights",
        "compression_score",
        "context_terms",
        "efficiency_score",
        "exact_match",
        "f1_score",
        "memory_terms",
        "normalize_answer",
        "potential",
        "resolve_weights",
        "task_score",
    },
    "agemem_gym.agents": {
        "NoMemoryPolicy",
        "OraclePolicy",
        "POLICIES",
        "POLICY_PLUGINS",
        "Policy",
        "RagPolicy",
        "RandomPolicy",
        "heuristic_answer",
        "make_policy",
    },
    "agemem_gym.embedders": {
        "CallableEmbedder",
        "Embedder",
        "HashingEmbedder",
        "MiniLMEmbedder",
        "make_embedder",
        "minilm_available",
    },
    "agemem_gym.context": {
        "Context",
        "FilterOutcome",
        "MESSAGE_OVERHEAD_TOKENS",
        "Message",
        "MessageKind",
        "Role",
        "SummaryOutcome",
        "TokenCounter",
        "approx_token_count",
        "hybrid_similarity",
        "make_token_counter",
    },
    "agemem_gym.errors": {
        "AgeMemError",
        "ConfigError",
        "DataError",
        "MemoryNotFoundError",
        "RecordingLockedError",
        "StoreFormatError",
        "StoreLockedError",
        "StoreWriteError",
    },
    "agemem_gym.task": {"Paragraph", "SupportingFact", "Task", "TaskSuite"},
    "agemem_gym.spaces": {"UnicodeText"},
    "agemem_gym.recorder": {
        "FORMAT",
        "RecordEpisodes",
        "RecordedEpisode",
        "ReplayReport",
        "VERSION",
        "export_sft",
        "load_episodes",
        "parse_episodes",
        "replay",
    },
    "agemem_gym.evaluation": {"EvalResult", "episode_row", "evaluate", "summarize_rows"},
    "agemem_gym.trainers.grpo": {
        "Args",
        "PRESETS",
        "Step",
        "Trajectory",
        "cli",
        "evaluate",
        "evaluate_checkpoint",
        "group_advantages",
        "grpo_loss",
        "kl_k3",
        "load_checkpoint_model",
        "main",
        "masked_mean",
        "parse_args",
        "preset",
        "rollout",
        "token_logprobs",
        "token_weights",
    },
    "agemem_gym.trainers.policy": {
        "Sampling",
        "Turn",
        "encode_chat",
        "generate",
        "left_pad",
        "response_logprobs",
        "token_logprobs",
        "top_p_filter",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned_and_every_name_exists(module: str) -> None:
    """``__all__`` lists exactly the pinned names, and each of them is defined in the module."""
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PUBLIC[module]
    assert len(mod.__all__) == len(set(mod.__all__)), "a name is listed twice"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, missing
