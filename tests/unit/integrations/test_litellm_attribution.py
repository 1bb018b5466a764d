"""Attribution of a LiteLLM call from its metadata (tokengov.integrations.litellm.attribution:
no LiteLLM needed): the documented order of the sources, and bad values left out with a
reason instead of losing the call."""

from __future__ import annotations

import subprocess
import sys

from tokengov.core.contracts import CallEvent, utcnow
from tokengov.integrations.litellm.attribution import (
    Attribution,
    attribute,
    event_id_of,
    from_request,
    read_litellm_usage,
)


def test_the_keys_team_wins_over_the_callers_metadata() -> None:
    who = attribute({"tokengov_team": "other"}, team_alias="search", team_id="team-uuid-1")
    assert who.team == "search"
    assert attribute({"tokengov_team": "other"}, team_id="team-uuid-1").team == "team-uuid-1"
    assert attribute({"tokengov_team": "other"}).team == "other"
    assert attribute({}).team is None


def test_workflow_task_and_agent_fall_back_in_the_documented_order() -> None:
    tags = ["env:prod", "workflow:billing-bot"]
    assert attribute({"tokengov_workflow": "triage"}, tags=tags, key_alias="k").workflow == "triage"
    assert attribute({}, tags=tags, key_alias="k").workflow == "billing-bot"
    assert attribute({}, tags=["env:prod"], key_alias="k").workflow == "k"
    assert attribute({"tokengov_task_id": "t-1"}, session_id="s-1").task_id == "t-1"
    assert attribute({}, session_id="s-1").task_id == "s-1"
    assert attribute({"tokengov_agent": "planner"}, end_user="u-1").agent == "planner"
    assert attribute({}, end_user="u-1").agent == "u-1"


def test_nothing_said_is_nothing_claimed() -> None:
    assert attribute(None) == Attribution()
    assert Attribution().call_fields() == {}
    assert attribute({"tokengov_team": "  ", "tokengov_task_id": ""}) == Attribution()


def test_bad_step_or_attempt_is_left_out_with_the_field_named() -> None:
    problems: list[str] = []
    who = attribute({"tokengov_step": "three", "tokengov_attempt": "2"}, problems=problems)
    assert (who.step, who.attempt) == (None, 2)
    assert problems == ["metadata.tokengov_step: expected a whole number ≥ 0, got 'three'; ignored"]
    problems.clear()
    assert attribute({"tokengov_attempt": 0}, problems=problems).attempt is None
    assert problems == ["metadata.tokengov_attempt: expected a whole number ≥ 1, got 0; ignored"]


def test_names_the_contract_would_refuse_are_skipped_so_the_call_is_kept() -> None:
    """A call event with a 200-character task id would be refused whole: the spend is kept
    under the next source instead, and the problem said."""
    problems: list[str] = []
    who = attribute(
        {"tokengov_task_id": "t" * 200, "tokengov_workflow": "bad\nname"},
        session_id="s-1",
        key_alias="billing-key",
        problems=problems,
    )
    assert (who.task_id, who.workflow) == ("s-1", "billing-key")
    assert problems == [
        "metadata.tokengov_workflow: not a name (more than 256 characters or control "
        "characters); ignored",
        "metadata.tokengov_task_id: not a name (more than 128 characters or control "
        "characters); ignored",
    ]
    # what attribute() keeps, the contract takes
    fields = who.call_fields()
    CallEvent(event_id="e-1", ts=utcnow(), model="m", **fields)


def test_a_proxy_request_reads_the_key_and_the_body() -> None:
    class Key:  # the attributes of LiteLLM's UserAPIKeyAuth read here
        team_alias = None
        team_id = "team-9"
        key_alias = "billing-key"
        end_user_id = None

    request = {
        "model": "gpt-4.1-mini",
        "user": "customer-3",
        "metadata": {"tokengov_task_id": "t-77", "tokengov_team": "ignored"},
        "litellm_session_id": "s-9",
    }
    assert from_request(request, Key(), []) == Attribution(
        team="team-9", workflow="billing-key", task_id="t-77", agent="customer-3"
    )


def test_event_ids_are_litellm_call_ids_when_they_can_be() -> None:
    assert event_id_of("4b0c8f2e-call") == "4b0c8f2e-call"
    for unusable in (None, "", "x" * 200, "bad\nid"):
        assert event_id_of(unusable) not in (unusable, "")


def test_no_usage_is_missing_not_zero() -> None:
    assert read_litellm_usage(None).missing
    assert read_litellm_usage({}).missing
    assert not read_litellm_usage({"prompt_tokens": 0, "completion_tokens": 0}).missing


def test_importing_tokengov_or_the_attribution_names_imports_no_litellm() -> None:
    """The extra is optional: only the callback itself imports LiteLLM."""
    code = (
        "import sys, tokengov, tokengov.integrations\n"
        "from tokengov.integrations.litellm import TASK_ID, attribute, LiteLLMSettings\n"
        "assert 'litellm' not in sys.modules, sorted(m for m in sys.modules if 'litellm' in m)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
