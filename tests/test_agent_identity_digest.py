"""Stored agent settings and fingerprints of fixed configs do not drift.

The operational settings (how fast a model runs, not what it says) are left out of what is
stored and hashed for an agent; a change to that set, or to how it is applied, would make
the same debater or judge a new agent in every existing store. The expected values were
computed before the set was given one definition."""

from __future__ import annotations

from typing import Any

from debate.agents.base import OPERATIONAL_SETTINGS
from debate.agents.model import OPERATIONAL, ModelDebater, ModelDebaterSettings
from debate.backends.prompts import TemplateSet
from debate.backends.settings import BackendSettings
from judges.config import parse_judge_config
from judges.model import ModelJudge


class _Backend:
    """Only what an identity reads from a backend."""

    def prompt_format(self) -> dict[str, Any]:
        return {}


DEBATER = {
    "model": "org/tiny", "backend": "transformers", "device": "cpu", "max_batch_size": 4,
    "token_budget": 4096, "prefix_cache": False, "prefix_cache_mb": 16.0, "cpu_threads": 2,
    "generation": "own", "continuous_max_batch_tokens": 512, "temperature": 0.5,
    "activations": {"layers": [-1]}, "best_of": 2,
    "preference_judge": {"model": "org/judge", "device": "cpu", "generation": "own",
                         "continuous_max_batch_tokens": 256, "timeout": 5.0},
}
JUDGE = {
    "model": "org/judge", "type": "text", "device": "cpu", "max_batch_size": 8,
    "generation": "own", "continuous_max_batch_tokens": 512, "timeout": 5.0, "cpu_threads": 2,
    "temperature": 0.3, "samples": 3,
}


def _debater():
    settings = ModelDebaterSettings.model_validate(DEBATER)
    return ModelDebater(settings, _Backend(), TemplateSet.load("debater"))  # type: ignore[arg-type]


def _judge():
    config = parse_judge_config(JUDGE)
    return ModelJudge(config, _Backend(), TemplateSet.load("judge"))  # type: ignore[arg-type]


def test_debater_identity_is_unchanged():
    identity = _debater().identity
    assert sorted(identity.settings) == DEBATER_KEYS
    assert sorted(identity.settings["preference_judge"]) == PREFERENCE_JUDGE_KEYS
    assert identity.fingerprint == DEBATER_FINGERPRINT


def test_judge_identity_is_unchanged():
    identity = _judge().identity
    assert sorted(identity.settings) == JUDGE_KEYS
    assert identity.fingerprint == JUDGE_FINGERPRINT


# computed on main before the operational set had one definition
DEBATER_KEYS = [
    "attn_implementation", "backend", "best_of", "chat_template", "context_policy", "dtype",
    "max_context", "max_new_tokens", "max_resamples", "min_new_tokens", "model", "name",
    "preference_judge", "prefill_chunk_mb", "repetition_penalty", "revision", "score_endpoint",
    "temperature", "template_version", "templates", "tokens_per_word", "top_k", "top_logprobs",
    "top_p", "trust_remote_code",
]
PREFERENCE_JUDGE_KEYS = [
    "attn_implementation", "backend", "chat_template", "context_policy", "dtype", "max_context",
    "model", "prefill_chunk_mb", "revision", "score_endpoint", "top_logprobs", "trust_remote_code",
]
DEBATER_FINGERPRINT = "dfc3c63e577b0525757419a9a759796d8669a701a8d0ca46e354f82339d9a0ce"
# a model judge's stored settings keep `generation` and `continuous_max_batch_tokens`
JUDGE_KEYS = [
    "attn_implementation", "backend", "both_orders", "chat_template", "context_policy",
    "continuous_max_batch_tokens", "dtype", "generation", "max_context", "max_new_tokens",
    "min_new_tokens", "model", "name", "prefill_chunk_mb", "revision", "samples",
    "score_endpoint", "seed", "stepped", "temperature", "template_version", "templates",
    "top_logprobs", "top_p", "trust_remote_code", "type",
]
JUDGE_FINGERPRINT = "a9d7a07a4eb86df9c385abdcf97b98d7b2cb10a880a5beb2a76aad8e58bb0b7c"


def test_operational_settings_are_backend_fields_with_one_definition():
    """Every name in the shared set is a real backend setting (a typo would silently store
    it), and the debater leaves out exactly three more than a judge does."""
    assert OPERATIONAL_SETTINGS <= set(BackendSettings.model_fields)
    assert OPERATIONAL - OPERATIONAL_SETTINGS == {
        "activations", "generation", "continuous_max_batch_tokens"}
    assert OPERATIONAL - OPERATIONAL_SETTINGS - {"activations"} <= set(BackendSettings.model_fields)
