"""LiteLLM → tokengov: one call event per call made through LiteLLM, and tokengov's decisions
obeyed at the gateway (``pip install 'tokengov[litellm]'``; docs/litellm.md).

:class:`TokengovCallback` is a LiteLLM custom logger (``litellm.integrations.custom_logger.
CustomLogger``, LiteLLM's documented callback interface). Put it in ``litellm.callbacks`` (the
SDK) or in a proxy's ``config.yaml`` (``litellm_settings: callbacks:
tokengov.integrations.litellm.proxy_handler``, built from the environment on first use):

- **Events.** Every call through the LiteLLM SDK (``completion``, ``acompletion``, a
  ``Router``) or proxy, success or failure, becomes one call event on ``tokengov.events``,
  queued on the SDK's :class:`~tokengov.producers.emitter.TokenEmitter`: it never waits for
  Kafka nor raises into LiteLLM. The event id is LiteLLM's call id (a call logged twice
  counts once). Usage comes from LiteLLM's standard logging payload (``usage_object``:
  LiteLLM's usage, OpenAI-shaped for every provider: ``prompt_tokens`` include the cache
  reads ``prompt_tokens_details.cached_tokens`` and writes ``.cache_write_tokens``,
  ``completion_tokens`` the reasoning tokens) read by the SDK's own OpenAI readers
  (:func:`~tokengov.producers.adapters.from_openai_chat`); no usage → ``usage_missing``.
- **Attribution** (:func:`attribute`): the key's team alias, else its team id, else the
  request metadata ``tokengov_team``; the workflow from ``tokengov_workflow``, else a request
  tag ``workflow:<name>``, else the key alias; the task from ``tokengov_task_id``, else
  LiteLLM's session id (``litellm_session_id``); the agent from ``tokengov_agent``, else the
  end user; ``tokengov_parent_agent``, ``tokengov_step``, ``tokengov_attempt`` as named.
  What is missing goes to the unattributed bucket, as for every other path.
- **Enforcement.** The proxy's ``async_pre_call_hook`` and, in the SDK, the deployment hook
  every ``acompletion`` passes (``async_pre_call_deployment_hook``) ask the SDK's
  :class:`~tokengov.producers.guard.Guard` before the call: a paused task, workflow or team is
  refused (HTTP 429 with the decision's reason from the proxy; :class:`TaskPaused` in the
  SDK), a throttle waits (without blocking the event loop) or is refused as
  :class:`ThrottleRefused` when the wait is longer than ``max_throttle_wait_s``, a fallback
  swaps in the decision's model. A synchronous ``completion`` has no hook that may refuse:
  call :meth:`TokengovCallback.check` on its arguments first.

Messages and responses are never read: the callback reads names, counts and the number and
names of tool calls, and asks LiteLLM to redact the messages from the standard logging
payload it hands this logger (``turn_off_message_logging``).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokengov.core.kafka import load_connection
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.integrations.litellm.attribution import (
    AGENT,
    ATTEMPT,
    METADATA_KEYS,
    PARENT_AGENT,
    STEP,
    TASK_ID,
    TEAM,
    WORKFLOW,
    WORKFLOW_TAG,
    Attribution,
    attribute,
    read_litellm_usage,
)
from tokengov.producers.guard import TaskPaused

if TYPE_CHECKING:
    from tokengov.integrations.litellm.callback import (
        CallbackStats,
        ThrottleRefused,
        TokengovCallback,
    )

__all__ = [
    "AGENT",
    "ATTEMPT",
    "METADATA_KEYS",
    "PARENT_AGENT",
    "STEP",
    "TASK_ID",
    "TEAM",
    "WORKFLOW",
    "WORKFLOW_TAG",
    "Attribution",
    "CallbackStats",
    "LiteLLMSettings",
    "TaskPaused",
    "ThrottleRefused",
    "TokengovCallback",
    "attribute",
    "handler_from_env",
    "read_litellm_usage",
]


class LiteLLMSettings(BaseSettings):
    """``TOKENGOV_LITELLM_*``: how :data:`proxy_handler` (a proxy's ``config.yaml``) is built.
    Kafka comes from ``TOKENGOV_KAFKA_*``, the data directory from ``TOKENGOV_DATA_DIR``."""

    model_config = SettingsConfigDict(env_prefix="TOKENGOV_LITELLM_", extra="ignore")

    enforce: bool = Field(
        default=True, description="Follow tokengov.decisions and enforce them before each call."
    )
    max_throttle_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="The longest throttle wait a call is held for; longer: refused (HTTP 429).",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="The emitter's disk spool while Kafka is away. Default: "
        "<TOKENGOV_DATA_DIR>/spool/litellm.",
    )
    topic_prefix: str = Field(
        default="", description="Prefix of the topic names (a shared cluster, tests)."
    )
    decisions_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="At start, how long to wait for the decisions in force to be read before "
        "the first call is answered (Kafka down: the calls proceed after it).",
    )


# -- the instance a proxy's config.yaml names ----------------------------------------------

log = logging.getLogger(__name__)

_handler: TokengovCallback | None = None
_handler_lock = threading.Lock()


def handler_from_env() -> TokengovCallback:
    """The process's callback built from ``TOKENGOV_KAFKA_*``, ``TOKENGOV_DATA_DIR`` and
    ``TOKENGOV_LITELLM_*`` (:class:`LiteLLMSettings`), once; closed when the process exits."""
    global _handler
    with _handler_lock:
        if _handler is None:
            settings = LiteLLMSettings()
            spool = settings.spool_dir or Settings().data_dir / "spool" / "litellm"
            from tokengov.integrations.litellm.callback import TokengovCallback

            _handler = TokengovCallback(
                load_connection(),
                topics=Topics.with_prefix(settings.topic_prefix),
                spool_dir=spool,
                enforce=settings.enforce,
                max_throttle_wait_s=settings.max_throttle_wait_s,
            )
            atexit.register(_handler.close)
            if _handler.guard is not None and not _handler.guard.wait_caught_up(
                settings.decisions_wait_s
            ):
                log.warning(
                    "tokengov: the decisions were not read within %g s; calls proceed until "
                    "they are",
                    settings.decisions_wait_s,
                )
        return _handler


#: Imported on first use: they import LiteLLM (the attribution names above do not).
_LAZY: frozenset[str] = frozenset(("CallbackStats", "ThrottleRefused", "TokengovCallback"))


def __getattr__(name: str) -> Any:
    """``proxy_handler``: what ``litellm_settings: callbacks:`` names in a proxy's
    config.yaml (built on first use, not at import); the callback's names, imported on first
    use."""
    if name == "proxy_handler":
        return handler_from_env()
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.callback"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
