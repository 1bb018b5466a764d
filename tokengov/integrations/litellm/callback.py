"""The LiteLLM custom logger: records every call, enforces tokengov's decisions before it
(tokengov.integrations.litellm has the overview)."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from tokengov.core.contracts import Decision, utcnow
from tokengov.core.errors import ContractError
from tokengov.core.kafka import KafkaConnection
from tokengov.core.topics import Topics
from tokengov.integrations.litellm.attribution import (
    CHECKED,
    event_id_of,
    from_log,
    from_request,
    is_timeout,
    mapping,
    model_name,
    read_litellm_usage,
    request_metadata,
    text,
    tool_calls_of,
)
from tokengov.producers.adapters import Usage
from tokengov.producers.emitter import TokenEmitter
from tokengov.producers.guard import Guard, TaskPaused, Verdict

__all__ = ["CallbackStats", "ThrottleRefused", "TokengovCallback"]

log = logging.getLogger(__name__)

#: The value of the request metadata ``tokengov_checked`` on a request tokengov refused.
REFUSED = "refused"


class ThrottleRefused(Exception):
    """A throttle decision asks for a longer wait than the callback's ``max_throttle_wait_s``:
    the call is refused instead of held. ``decision`` says why; ``wait_ms`` how long."""

    def __init__(self, decision: Decision, wait_ms: int, max_wait_s: float) -> None:
        self.decision = decision
        self.wait_ms = wait_ms
        super().__init__(
            f"{decision.topic_key} is throttled to one call every {wait_ms} ms, longer than "
            f"this gateway waits ({max_wait_s:g} s): {decision.reason}"
        )


# -- the callback -------------------------------------------------------------------------


@dataclass
class CallbackStats:
    """What the callback did, counted (its log lines say why)."""

    recorded: int = 0  # call events handed to the emitter
    refused: int = 0  # calls refused: a pause, or a throttle longer than the maximum wait
    throttled: int = 0  # calls held for a throttle decision
    fallbacks: int = 0  # calls whose model a fallback decision replaced
    unreadable_usage: int = 0  # usage that broke the contract: recorded as usage_missing
    ignored_metadata: int = 0  # attribution values the contract would refuse: skipped, logged
    errors: int = 0  # recording or checking failed: logged; the call went on


def _wait_elsewhere(_seconds: float) -> None:
    """The guard's sleep: the callback waits itself (``asyncio.sleep`` in a hook)."""


class TokengovCallback(CustomLogger):  # type: ignore[misc]  # LiteLLM is not followed (pyproject)
    """A LiteLLM custom logger that records every call and enforces tokengov's decisions.

    ``TokengovCallback(bootstrap)`` builds its own emitter and guard (``emitter=`` shares an
    existing emitter); :meth:`close` (or ``with``) delivers what is queued and stops them.
    """

    def __init__(
        self,
        kafka: KafkaConnection | str,
        *,
        topics: Topics | None = None,
        emitter: TokenEmitter | None = None,
        spool_dir: str | Path | None = None,
        enforce: bool = True,
        max_throttle_wait_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        sync_sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(turn_off_message_logging=True)
        self.topics = topics or Topics()
        self._owns_emitter = emitter is None
        self.emitter = emitter or TokenEmitter(kafka, topic=self.topics.events, spool_dir=spool_dir)
        # The guard's own sleep would block the proxy's event loop: it only answers here.
        self.guard = Guard(kafka, self.topics, sleep=_wait_elsewhere).start() if enforce else None
        self.max_throttle_wait_s = max_throttle_wait_s
        self._sleep = sleep
        self._sync_sleep = sync_sleep
        self.stats = CallbackStats()
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._recent_lock = threading.Lock()

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver (or spool) every queued event and stop following decisions."""
        if self.guard is not None:
            self.guard.close()
        if self._owns_emitter:
            self.emitter.close(timeout_s)

    def __enter__(self) -> TokengovCallback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ enforcement

    def _verdict(self, request: Mapping[str, Any], key: Any) -> Verdict | None:
        """The guard's answer for this request; raises TaskPaused / ThrottleRefused."""
        if self.guard is None:
            return None
        problems: list[str] = []
        who = from_request(request, key, problems)
        try:
            verdict = self.guard.before_call(
                who.task_id or "", workflow=who.workflow, team=who.team
            )
        except TaskPaused as paused:
            self._refused(paused.decision)
            raise
        if verdict.action == "throttle" and verdict.throttled_ms > self.max_throttle_wait_s * 1000:
            assert verdict.decision is not None  # a throttle verdict carries its decision
            self._refused(verdict.decision)
            raise ThrottleRefused(verdict.decision, verdict.throttled_ms, self.max_throttle_wait_s)
        return verdict

    def _refused(self, decision: Decision) -> None:
        self.stats.refused += 1
        log.info(
            "tokengov: refused a LiteLLM call: %s %s (%s)",
            decision.topic_key,
            decision.action,
            decision.reason,
        )

    def _apply(self, request: dict[str, Any], verdict: Verdict | None) -> dict[str, Any]:
        if verdict is not None and verdict.action == "throttle":
            self.stats.throttled += 1
        if (
            verdict is not None
            and verdict.action == "fallback"
            and verdict.fallback_model
            and request.get("model") != verdict.fallback_model
        ):
            log.info(
                "tokengov: fallback decision %s: model %s → %s",
                verdict.decision.topic_key if verdict.decision else "?",
                request.get("model"),
                verdict.fallback_model,
            )
            request["model"] = verdict.fallback_model
            self.stats.fallbacks += 1
        return request

    def check(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """For a synchronous ``litellm.completion(**request)``: the request to send (a copy,
        its ``model`` replaced on a fallback decision), after waiting out a throttle. Raises
        :class:`TaskPaused` or :class:`ThrottleRefused`."""
        verdict = self._verdict(request, None)
        if verdict is not None and verdict.throttled_ms:
            self._sync_sleep(verdict.throttled_ms / 1000)
        return self._apply(dict(request), verdict)

    async def acheck(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`check` for asynchronous callers (the wait does not block the loop)."""
        verdict = self._verdict(request, None)
        if verdict is not None and verdict.throttled_ms:
            await self._sleep(verdict.throttled_ms / 1000)
        return self._apply(dict(request), verdict)

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        """The proxy's hook before each call: refuses with HTTP 429 (the decision's reason
        in the body, ``Retry-After``), waits out a throttle, swaps a fallback model."""
        try:
            verdict = self._verdict(data, user_api_key_dict)
        except (TaskPaused, ThrottleRefused) as refusal:
            _mark(data, REFUSED)  # the proxy logs the refusal as a failure: not a call
            raise _too_many_requests(refusal) from refusal
        except Exception:  # tokengov's trouble must not stop the gateway: the call proceeds
            self.stats.errors += 1
            log.exception("tokengov: could not check a proxy request; it proceeds")
            return data
        if verdict is not None and verdict.throttled_ms:
            await self._sleep(verdict.throttled_ms / 1000)
        _mark(data, "checked")
        return self._apply(data, verdict)

    async def async_pre_call_deployment_hook(
        self, kwargs: dict[str, Any], call_type: Any
    ) -> dict[str, Any] | None:
        """LiteLLM's hook before each ``acompletion`` (SDK, Router) reaches its deployment:
        raises :class:`TaskPaused` / :class:`ThrottleRefused`, waits, swaps the model. A
        proxy request, checked already by :meth:`async_pre_call_hook`, passes."""
        if self.guard is None or request_metadata(kwargs).get(CHECKED) is not None:
            return None
        try:
            verdict = self._verdict(kwargs, None)
        except (TaskPaused, ThrottleRefused):
            raise
        except Exception:
            self.stats.errors += 1
            log.exception("tokengov: could not check a LiteLLM call; it proceeds")
            return None
        if verdict is not None and verdict.throttled_ms:
            await self._sleep(verdict.throttled_ms / 1000)
        return self._apply(kwargs, verdict)

    # ------------------------------------------------------------------ events

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, failed=False)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, failed=True)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, failed=True)

    def _record(self, kwargs: Any, response_obj: Any, *, failed: bool) -> None:
        """Queue the call's event. Never raises into LiteLLM."""
        try:
            values = self._call_values(kwargs, response_obj, failed=failed)
            if values is not None:
                self.emitter.emit_call(**values)
                self.stats.recorded += 1
        except Exception:
            self.stats.errors += 1
            log.exception("tokengov: a LiteLLM call could not be recorded")

    def _first(self, event_id: str) -> bool:
        """False when this event was recorded already (LiteLLM may log a call through both
        its sync and async handlers)."""
        with self._recent_lock:
            if event_id in self._recent:
                return False
            self._recent[event_id] = None
            if len(self._recent) > 10_000:
                self._recent.popitem(last=False)
            return True

    def _call_values(
        self, kwargs: Mapping[str, Any], response_obj: Any, *, failed: bool
    ) -> dict[str, Any] | None:
        exception = kwargs.get("exception")
        if failed and _refused_by_tokengov(kwargs, exception):
            return None  # no model was called (the refusal is counted and logged)
        payload = mapping(kwargs.get("standard_logging_object"))
        event_id = event_id_of(payload.get("litellm_call_id") or kwargs.get("litellm_call_id"))
        if failed:
            event_id += ":failure"
        if not self._first(event_id):
            return None
        problems: list[str] = []
        who = from_log(kwargs, problems)
        for problem in problems:
            self.stats.ignored_metadata += 1
            log.warning("tokengov: LiteLLM call %s: %s", event_id, problem)
        logged = mapping(payload.get("metadata"))
        raw_usage = logged.get("usage_object")
        if raw_usage is None and not failed:
            raw_usage = getattr(response_obj, "usage", None)
        try:
            usage = read_litellm_usage(raw_usage)
        except ContractError as exc:
            self.stats.unreadable_usage += 1
            log.warning(
                "tokengov: LiteLLM call %s: usage not recorded, it breaks the contract (%s); "
                "the call is recorded as usage_missing",
                event_id,
                exc,
            )
            usage = Usage(missing=True)
        provider = (
            text(payload.get("custom_llm_provider"))
            or text(kwargs.get("custom_llm_provider"))
            or "unknown"
        )
        values: dict[str, Any] = {
            "event_id": event_id,
            "model": model_name(
                text(payload.get("model")) or text(kwargs.get("model")) or "unknown", provider
            ),
            "provider": provider,
            "tokens": usage.tokens,
            "status": "ok" if not failed else ("timeout" if is_timeout(exception) else "error"),
            **who.call_fields(),
        }
        if usage.missing:
            values["usage_missing"] = True
        ended = payload.get("endTime")
        if isinstance(ended, int | float) and math.isfinite(ended):
            values["ts"] = datetime.fromtimestamp(ended, UTC)
        elapsed = payload.get("response_time")
        if isinstance(elapsed, int | float) and math.isfinite(elapsed) and elapsed >= 0:
            values["latency_ms"] = round(elapsed * 1000)
        window = mapping(mapping(payload.get("model_map_information")).get("model_map_value")).get(
            "max_input_tokens"
        )
        if isinstance(window, int) and not isinstance(window, bool) and window > 0:
            values["context_window"] = window
        if not failed:
            values["tool_calls"], tool_name = tool_calls_of(response_obj)
            if tool_name is not None:
                values["tool_name"] = tool_name
            tier = text(getattr(response_obj, "service_tier", None))
            if tier is not None:
                values["service_tier"] = tier
        return values


def _mark(request: dict[str, Any], value: str) -> None:
    """Note in the request's metadata (which LiteLLM carries to the deployment hook and to
    the logged call) that tokengov has answered it."""
    metadata = request.get("litellm_metadata")
    if not isinstance(metadata, dict):
        metadata = request.get("metadata")
    if not isinstance(metadata, dict):
        metadata = request["metadata"] = {}
    metadata[CHECKED] = value


def _refused_by_tokengov(kwargs: Mapping[str, Any], exception: Any) -> bool:
    """A failure that is tokengov's own refusal (the SDK raises it as is, the proxy as the
    HTTP 429 raised from it, its request marked)."""
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, TaskPaused | ThrottleRefused):
            return True
        exception, seen = exception.__cause__, seen + 1
    return request_metadata(mapping(kwargs.get("litellm_params"))).get(CHECKED) == REFUSED


def _too_many_requests(refusal: TaskPaused | ThrottleRefused) -> Exception:
    """The proxy's answer to a refused call: HTTP 429, the decision in the body."""
    from fastapi import HTTPException  # the LiteLLM proxy's web framework

    decision = refusal.decision
    if isinstance(refusal, ThrottleRefused):
        retry_after = math.ceil(refusal.wait_ms / 1000)
    elif decision.expires_at is not None:
        retry_after = max(1, math.ceil((decision.expires_at - utcnow()).total_seconds()))
    else:
        retry_after = None
    refused: Exception = HTTPException(
        status_code=429,
        detail={
            "error": str(refusal),
            "tokengov": {
                "scope": decision.scope,
                "key": decision.key,
                "action": decision.action,
                "reason": decision.reason,
                "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
            },
        },
        headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
    )
    return refused
