"""The LiteLLM proxy (``litellm[proxy]``, in a virtualenv of its own) with tokengov's callback
named in its ``config.yaml`` exactly as docs/litellm.md says, its model answered by LiteLLM's
own ``mock_response``: a paused task gets HTTP 429 with the decision's reason, so does a
throttle longer than the gateway waits, a fallback decision swaps the model, and a call
that goes through is an event on the session's broker."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from tests.kafka_helpers import read_messages
from tokengov.app.local.broker import free_port
from tokengov.core.contracts import Decision, utcnow

from .conftest import publish

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = Path(__file__).with_name("proxy-requirements.txt")
#: Made by `make test`; made here (once per session) when missing.
MADE_BY_MAKE = ROOT / ".venv" / "litellm-proxy"

CONFIG = """\
model_list:
  - model_name: gpt-4.1-mini
    litellm_params: {model: openai/gpt-4.1-mini, api_key: sk-unused, mock_response: "an answer"}
  - model_name: gpt-4.1-nano
    litellm_params: {model: openai/gpt-4.1-nano, api_key: sk-unused, mock_response: "an answer"}
litellm_settings:
  callbacks: tokengov.integrations.litellm.proxy_handler
"""


@pytest.fixture(scope="session")
def proxy_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``litellm`` console script of a virtualenv with litellm[proxy] and this tokengov."""
    given = os.environ.get("TOKENGOV_LITELLM_PROXY_VENV")
    # `make test` builds it in the background while the suite starts: wait for that build
    # (its marker goes when it ends, built or not)
    building = MADE_BY_MAKE.with_name("litellm-proxy.building")
    deadline = time.monotonic() + 900
    while building.exists() and not (MADE_BY_MAKE / ".installed").exists():
        assert time.monotonic() < deadline, f"{MADE_BY_MAKE} still building after 15 min"
        time.sleep(1)  # another process's pip install: no event to wait on but its files
    for venv in (Path(given) if given else None, MADE_BY_MAKE):
        if venv is not None and (venv / ".installed").exists():
            return venv / "bin" / "litellm"
    venv = tmp_path_factory.mktemp("litellm-proxy-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "-r", str(REQUIREMENTS), "-e", str(ROOT)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, f"pip install -r {REQUIREMENTS}:\n{install.stderr}"
    return venv / "bin" / "litellm"


@pytest.fixture
def proxy(proxy_bin, bootstrap, topic_names, topic_prefix, tmp_path) -> Iterator[httpx.Client]:
    """The proxy on a loopback port, following this test's topics; a client with its key."""
    publish(
        bootstrap,
        topic_names,
        Decision(
            scope="task",
            key="t-proxy-paused",
            action="pause",
            reason="runaway: max_tool_calls 13 > 12",
            expires_at=utcnow() + timedelta(hours=1),
        ),
        Decision(
            scope="workflow", key="wf-cheap", action="fallback", reason="budget: 95% of the day",
            fallback_model="gpt-4.1-nano",
        ),
        Decision(
            scope="workflow", key="wf-slow", action="throttle", reason="retry storm",
            throttle_ms=30_000,
        ),
    )  # fmt: skip
    (tmp_path / "config.yaml").write_text(CONFIG)
    port, key = free_port(), f"sk-{secrets.token_hex(32)}"
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # offline: the cost map the package ships
        "TOKENGOV_KAFKA_BOOTSTRAP": bootstrap,
        "TOKENGOV_LITELLM_TOPIC_PREFIX": topic_prefix,
        "TOKENGOV_DATA_DIR": str(tmp_path / "data"),
        "TOKENGOV_LITELLM_MAX_THROTTLE_WAIT_S": "2",
    }
    log = (tmp_path / "proxy.log").open("wb")
    process = subprocess.Popen(
        [str(proxy_bin), "--config", str(tmp_path / "config.yaml"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "proxy.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the proxy did not answer within 120 s"
            try:
                if client.get("/health/liveliness").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def chat(client: httpx.Client, model: str, **metadata: str) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": "PROMPT-c0de summarise the ticket"}],
            "metadata": metadata,
        },
    )


def test_the_proxy_refuses_a_paused_task_and_records_the_calls_it_lets_through(
    proxy, bootstrap, topic_names
) -> None:
    refused = chat(proxy, "gpt-4.1-mini", tokengov_task_id="t-proxy-paused")
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]  # OpenAI's error shape: clients raise RateLimitError
    assert (error["type"], error["code"]) == ("rate_limit_error", "429")
    assert error["message"].startswith("task:t-proxy-paused is paused until ")
    assert "runaway: max_tool_calls 13 > 12" in error["message"]
    told = error["provider_specific_fields"]["tokengov"]
    assert {k: told[k] for k in ("scope", "key", "action", "reason")} == {
        "scope": "task",
        "key": "t-proxy-paused",
        "action": "pause",
        "reason": "runaway: max_tool_calls 13 > 12",
    }
    assert 0 < int(refused.headers["retry-after"]) <= 3600  # until the pause expires

    # a throttle longer than TOKENGOV_LITELLM_MAX_THROTTLE_WAIT_S: refused, not held
    held_off = chat(proxy, "gpt-4.1-mini", tokengov_workflow="wf-slow")
    assert held_off.status_code == 429, held_off.text
    assert held_off.headers["retry-after"] == "30"
    assert held_off.json()["error"]["message"] == (
        "workflow:wf-slow is throttled to one call every 30000 ms, longer than this gateway "
        "waits (2 s): retry storm"
    )

    answered = chat(
        proxy, "gpt-4.1-mini", tokengov_task_id="t-proxy-ok", tokengov_workflow="support-triage"
    )
    assert answered.status_code == 200, answered.text
    usage = answered.json()["usage"]
    swapped = chat(
        proxy, "gpt-4.1-mini", tokengov_task_id="t-proxy-fb", tokengov_workflow="wf-cheap"
    )
    assert swapped.status_code == 200, swapped.text
    # the proxy answers with the model name the client asked for; the deployment says
    assert swapped.headers["x-litellm-model-group"] == "gpt-4.1-nano"

    def events(messages: list[tuple[bytes | None, bytes]]) -> list[dict]:
        found: list[dict] = []
        for _, value in messages:
            doc = orjson.loads(value)
            found.extend(doc if isinstance(doc, list) else [doc])
        return found

    messages = read_messages(
        bootstrap, topic_names.events, until=lambda m: len(events(m)) >= 2, timeout_s=60
    )
    by_task = {e["task_id"]: e for e in events(messages)}
    assert set(by_task) == {"t-proxy-ok", "t-proxy-fb"}  # the refused call reached no model
    ok = by_task["t-proxy-ok"]
    assert (ok["workflow"], ok["model"], ok["provider"], ok["status"]) == (
        "support-triage",
        "gpt-4.1-mini",
        "openai",
        "ok",
    )
    assert (ok["tokens"]["input"], ok["tokens"]["output"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert by_task["t-proxy-fb"]["model"] == "gpt-4.1-nano"
    assert all(b"PROMPT-c0de" not in value for _, value in messages)
