"""A loopback webhook endpoint for the demo: the policy's webhook receivers deliver here.

It checks each POST's ``X-Tokengov-Signature`` (``t=…,v1=…``, verified with
:func:`tokengov.core.signing.verify` and the receiver's secret) and counts what arrived per receiver, so the demo can show signed
notifications really reaching a team's endpoint.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tokengov.core.policy import Policy
from tokengov.core.signing import SIGNATURE_HEADER, SignatureError, verify

__all__ = ["WebhookSink"]


class WebhookSink:
    """Serves ``http://127.0.0.1:<port>/<receiver>`` for every webhook receiver whose URL
    comes from the environment; :meth:`environment` gives the variables to set."""

    def __init__(self, policy: Policy) -> None:
        self.secrets: dict[str, str] = {}
        self.url_envs: dict[str, str] = {}
        self.secret_envs: dict[str, str] = {}
        for name, receiver in policy.receivers.items():
            if receiver.type == "webhook" and receiver.url_env:
                self.url_envs[name] = receiver.url_env
                if receiver.secret_env:
                    self.secret_envs[name] = receiver.secret_env
                    self.secrets[name] = secrets.token_hex(16)
        self.received: Counter[str] = Counter()
        self.bad_signatures: Counter[str] = Counter()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                name = self.path.strip("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                secret = sink.secrets.get(name)
                valid = True
                if secret is not None:
                    try:
                        verify(body, self.headers.get(SIGNATURE_HEADER), secret)
                    except SignatureError:
                        valid = False
                with sink._lock:
                    (sink.received if valid else sink.bad_signatures)[name] += 1
                self.send_response(HTTPStatus.NO_CONTENT if valid else HTTPStatus.UNAUTHORIZED)
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-webhooks", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def environment(self) -> dict[str, str]:
        env = {var: f"http://127.0.0.1:{self.port}/{name}" for name, var in self.url_envs.items()}
        env.update({var: self.secrets[name] for name, var in self.secret_envs.items()})
        return env

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
