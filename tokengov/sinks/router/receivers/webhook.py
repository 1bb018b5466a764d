"""``type: webhook``: the notification's JSON POSTed, signed when a secret is set.

With ``secret_env``, each attempt carries ``X-Tokengov-Signature: t=<unix seconds>,
v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` (Stripe's scheme; :mod:`tokengov.core.signing`
signs and verifies it). Every attempt carries ``X-Tokengov-Notification-Id``: the
notification's id, the same on every retry of it, for receivers that deduplicate.
A retry is signed again with the time of that attempt, so a receiver's replay window
never rejects a legitimate late retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import httpx

from tokengov.core.policy import WebhookReceiver as WebhookConfig
from tokengov.core.signing import NOTIFICATION_ID_HEADER, SIGNATURE_HEADER, sign
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers.base import JSON_HEADERS, HttpReceiver, Secrets, hook_url

__all__ = ["NOTIFICATION_ID_HEADER", "SIGNATURE_HEADER", "WebhookReceiver", "sign"]


class WebhookReceiver(HttpReceiver[WebhookConfig]):
    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        client: httpx.AsyncClient,
        env: Mapping[str, str],
        *,
        grafana_url: str | None = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, config, client, env, grafana_url=grafana_url)
        self.clock_s = clock_s

    async def send(self, notification: Notification) -> None:
        secrets = Secrets(self.name, self.env)
        url = hook_url(self.config.url, self.config.url_env, secrets)
        body = notification.body()
        headers = {
            **JSON_HEADERS,
            "User-Agent": "tokengov-router",
            NOTIFICATION_ID_HEADER: notification.notification_id,
        }
        if self.config.secret_env:
            secret = secrets.get(self.config.secret_env, "secret_env")
            headers[SIGNATURE_HEADER] = sign(secret, body, timestamp=int(self.clock_s()))
        await self.post(url, body, secrets, headers=headers)
