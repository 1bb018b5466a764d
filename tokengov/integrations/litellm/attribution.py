"""What tokengov reads from a LiteLLM call: its attribution (the request metadata names
callers set, LiteLLM's own key, team, tag, end-user and session metadata) and its usage.
Plain functions over LiteLLM's dicts: this module imports nothing of LiteLLM."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from tokengov.core.contracts import MAX_COUNT, MAX_ID_CHARS, MAX_NAME_CHARS, new_event_id
from tokengov.core.errors import ContractError
from tokengov.producers.adapters import Usage, from_openai_chat, from_openai_responses

__all__ = [
    "AGENT",
    "ATTEMPT",
    "CHECKED",
    "METADATA_KEYS",
    "PARENT_AGENT",
    "STEP",
    "TASK_ID",
    "TEAM",
    "WORKFLOW",
    "WORKFLOW_TAG",
    "Attribution",
    "attribute",
    "from_log",
    "from_request",
    "model_name",
    "read_litellm_usage",
]

log = logging.getLogger(__name__)

# -- the names a caller sets --------------------------------------------------------------

#: Request metadata read for attribution (``metadata={...}`` on a LiteLLM call, or the
#: ``metadata`` of a proxy request's body).
TASK_ID: Final = "tokengov_task_id"
TEAM: Final = "tokengov_team"
WORKFLOW: Final = "tokengov_workflow"
AGENT: Final = "tokengov_agent"
PARENT_AGENT: Final = "tokengov_parent_agent"
STEP: Final = "tokengov_step"
ATTEMPT: Final = "tokengov_attempt"
METADATA_KEYS: Final = (TASK_ID, TEAM, WORKFLOW, AGENT, PARENT_AGENT, STEP, ATTEMPT)
#: A request tag ``workflow:<name>`` names the workflow when the metadata does not.
WORKFLOW_TAG: Final = "workflow:"
#: Set in a request's metadata by the proxy's pre-call hook, so that the deployment hook the
#: same request passes next does not ask (and wait on a throttle) a second time.
CHECKED: Final = "tokengov_checked"
METADATA_FIELDS: Final = ("metadata", "litellm_metadata")
#: What the contract refuses in a name: ASCII control characters (C0 and DEL).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


# -- attribution --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a LiteLLM call belongs to. None: not said (team and workflow then count as
    ``unattributed``; a call without a task is its own task)."""

    team: str | None = None
    workflow: str | None = None
    task_id: str | None = None
    agent: str | None = None
    parent_agent: str | None = None
    step: int | None = None
    attempt: int | None = None

    def call_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``TokenEmitter.emit_call``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if v is not None}


def text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    stripped = str(value).strip()
    return stripped or None


def _workflow_tag(tags: Any) -> str | None:
    if not isinstance(tags, list | tuple):
        return None
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(WORKFLOW_TAG):
            name = tag.removeprefix(WORKFLOW_TAG).strip()
            if name:
                return name
    return None


def _whole(meta: Mapping[str, Any], key: str, least: int, problems: list[str]) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_COUNT:
        problems.append(
            f"metadata.{key}: expected a whole number ≥ {least}, got {value!r}; ignored"
        )
        return None
    return value


def _first(limit: int, problems: list[str], *candidates: tuple[str, Any]) -> str | None:
    """The first candidate that is set and can be a name of the contract (at most ``limit``
    characters, no control characters); one that cannot is described in ``problems`` and
    skipped, so that the call is kept (under the next source, else unattributed) rather
    than refused by the contract."""
    for where, value in candidates:
        found = text(value)
        if found is None:
            continue
        if len(found) > limit or _CONTROL.search(found):
            problems.append(
                f"{where}: not a name (more than {limit} characters or control characters); ignored"
            )
            continue
        return found
    return None


def attribute(
    metadata: Mapping[str, Any] | None,
    *,
    team_alias: Any = None,
    team_id: Any = None,
    key_alias: Any = None,
    end_user: Any = None,
    tags: Iterable[str] | None = None,
    session_id: Any = None,
    problems: list[str] | None = None,
) -> Attribution:
    """The attribution of one call from LiteLLM's metadata (the module docstring has the
    order). The key's team wins over ``tokengov_team``: a caller of a proxy cannot move its
    spend, nor escape a team's pause, by naming another team. Values the contract would
    refuse (too long, control characters, a step below 0, an attempt below 1) are skipped
    and described in ``problems``."""
    meta = metadata or {}
    bad: list[str] = problems if problems is not None else []
    return Attribution(
        team=_first(
            MAX_NAME_CHARS,
            bad,
            ("the key's team alias", team_alias),
            ("the key's team id", team_id),
            (f"metadata.{TEAM}", meta.get(TEAM)),
        ),
        workflow=_first(
            MAX_NAME_CHARS,
            bad,
            (f"metadata.{WORKFLOW}", meta.get(WORKFLOW)),
            (f"the tag {WORKFLOW_TAG}<name>", _workflow_tag(tags)),
            ("the key alias", key_alias),
        ),
        task_id=_first(
            MAX_ID_CHARS,
            bad,
            (f"metadata.{TASK_ID}", meta.get(TASK_ID)),
            ("the session id", session_id),
        ),
        agent=_first(
            MAX_NAME_CHARS,
            bad,
            (f"metadata.{AGENT}", meta.get(AGENT)),
            ("the end user", end_user),
        ),
        parent_agent=_first(
            MAX_NAME_CHARS, bad, (f"metadata.{PARENT_AGENT}", meta.get(PARENT_AGENT))
        ),
        step=_whole(meta, STEP, 0, bad),
        attempt=_whole(meta, ATTEMPT, 1, bad),
    )


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def request_metadata(request: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in METADATA_FIELDS:
        merged.update(mapping(request.get(name)))
    return merged


def from_request(request: Mapping[str, Any], key: Any, problems: list[str]) -> Attribution:
    """A request as the proxy's pre-call hook or the SDK's deployment hook sees it (``key``:
    the proxy's ``UserAPIKeyAuth``, None in the SDK, where the proxy's ``user_api_key_*``
    metadata of a routed request stands in for it)."""
    meta = request_metadata(request)
    return attribute(
        meta,
        team_alias=getattr(key, "team_alias", None) or meta.get("user_api_key_team_alias"),
        team_id=getattr(key, "team_id", None) or meta.get("user_api_key_team_id"),
        key_alias=getattr(key, "key_alias", None) or meta.get("user_api_key_alias"),
        end_user=getattr(key, "end_user_id", None)
        or meta.get("user_api_key_end_user_id")
        or request.get("user"),
        tags=request.get("tags") or meta.get("tags"),
        session_id=request.get("litellm_session_id"),
        problems=problems,
    )


def from_log(kwargs: Mapping[str, Any], problems: list[str]) -> Attribution:
    """A logged call: LiteLLM's standard logging payload, then the call's own parameters."""
    payload = mapping(kwargs.get("standard_logging_object"))
    logged = mapping(payload.get("metadata"))
    params = mapping(kwargs.get("litellm_params"))
    meta = {**mapping(logged.get("requester_metadata")), **request_metadata(params)}
    return attribute(
        meta,
        team_alias=logged.get("user_api_key_team_alias") or logged.get("team_alias"),
        team_id=logged.get("user_api_key_team_id") or logged.get("team_id"),
        key_alias=logged.get("user_api_key_alias"),
        end_user=payload.get("end_user")
        or logged.get("user_api_key_end_user_id")
        or kwargs.get("user"),
        tags=payload.get("request_tags") or meta.get("tags"),
        session_id=payload.get("session_id") or params.get("litellm_session_id"),
        problems=problems,
    )


# -- usage --------------------------------------------------------------------------------


def read_litellm_usage(usage: Any) -> Usage:
    """LiteLLM's usage (a ``litellm.Usage`` or its dict) as the SDK reads OpenAI's: LiteLLM
    reports every provider in OpenAI's chat shape (Anthropic's cache reads and writes added
    into ``prompt_tokens``, as ``prompt_tokens_details.cached_tokens`` and
    ``.cache_write_tokens``; its 1-hour writes in ``.cache_creation_token_details``), the
    Responses API in its own. None or an empty usage: ``missing``."""
    if usage is None:
        return Usage(missing=True)
    dump = getattr(usage, "model_dump", None)
    u = dump() if callable(dump) else usage
    if not isinstance(u, Mapping):
        raise ContractError(f"expected LiteLLM's usage, got {type(usage).__name__}", field="usage")
    if "prompt_tokens" in u or "completion_tokens" in u:
        return Usage(from_openai_chat(u))
    if "input_tokens" in u or "output_tokens" in u:
        return Usage(from_openai_responses(u))
    return Usage(missing=True)


def model_name(model: str, provider: str) -> str:
    """The model as prices name it: LiteLLM's ``<provider>/<model>`` without the provider
    LiteLLM routed to (``openai/gpt-4.1-mini`` → ``gpt-4.1-mini``)."""
    return model.removeprefix(f"{provider}/") or model


def is_timeout(exception: Any) -> bool:
    return any(
        cls.__name__ in ("Timeout", "APITimeoutError", "TimeoutError")
        for cls in type(exception).__mro__
    )


def tool_calls_of(response: Any) -> tuple[int, str | None]:
    """How many tool calls the first choice asks for, and the first one's name (names and
    counts only: never the arguments)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        return 0, None
    calls = getattr(getattr(choices[0], "message", None), "tool_calls", None)
    if not isinstance(calls, list) or not calls:
        return 0, None
    name = getattr(getattr(calls[0], "function", None), "name", None)
    return len(calls), text(name)


def event_id_of(call_id: Any) -> str:
    """LiteLLM's call id as the event id (a call logged twice counts once), or a new id when
    it cannot be one (too long for ``<id>:failure``, control characters)."""
    found = text(call_id)
    if found is None or len(found) > MAX_ID_CHARS - len(":failure") or not found.isprintable():
        return new_event_id()
    return found
