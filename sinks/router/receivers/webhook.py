"""``type: webhook``: the notification's JSON POSTed, signed when a secret is set.

``X-Tokengov-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with the
secret from ``secret_env``; the receiving side recomputes it over the exact bytes.
"""

from __future__ import annotations

import hashlib
import hmac

from sinks.router.notification import Notification
from sinks.router.receivers.base import JSON_HEADERS, HttpReceiver, Secrets, hook_url
from tokengov.policy import WebhookReceiver as WebhookConfig

__all__ = ["SIGNATURE_HEADER", "WebhookReceiver", "sign"]

SIGNATURE_HEADER = "X-Tokengov-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookReceiver(HttpReceiver[WebhookConfig]):
    async def send(self, notification: Notification) -> None:
        secrets = Secrets(self.name, self.env)
        url = hook_url(self.config.url, self.config.url_env, secrets)
        body = notification.body()
        headers = {
            **JSON_HEADERS,
            "User-Agent": "tokengov-router",
            "X-Tokengov-Notification-Id": notification.notification_id,
        }
        if self.config.secret_env:
            headers[SIGNATURE_HEADER] = sign(
                secrets.get(self.config.secret_env, "secret_env"), body
            )
        await self.post(url, body, secrets, headers=headers)
