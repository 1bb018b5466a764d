"""``type: email``: SMTP, STARTTLS by default, credentials from the environment.

The standard library's :mod:`smtplib` runs in a worker thread so a slow mail
server never blocks the event loop. With ``starttls: true`` (the default) a server
that does not offer STARTTLS is an error — the message is never sent in clear.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from tokengov.core.errors import DeliveryError
from tokengov.core.policy import EmailReceiver as EmailConfig
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers.base import ANSWER_EXCERPT_CHARS, Secrets
from tokengov.sinks.router.receivers.render import dashboard_url, facts
from tokengov.sinks.router.redact import excerpt

__all__ = ["EmailReceiver", "email_message"]


def email_message(
    notification: Notification, *, sender: str, to: list[str], grafana_url: str | None
) -> EmailMessage:
    message = EmailMessage()
    first = notification.alerts[0].summary if notification.alerts else ""
    message["Subject"] = f"{notification.title()}: {first}"[:200]
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(notification.created_at.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(idstring=notification.notification_id[:8], domain="tokengov")
    message["X-Tokengov-Notification-Id"] = notification.notification_id
    lines = [f"{notification.title()} — {notification.reason}", ""]
    for alert in notification.alerts:
        lines.append(alert.summary)
        lines.extend(f"  {k + ':':10} {v}" for k, v in facts(alert))
        link = dashboard_url(grafana_url, alert)
        if link:
            lines.append(f"  {'Dashboard:':10} {link}")
        lines.append(f"  {'Alert:':10} {alert.alert_id} ({alert.fingerprint})")
        lines.append("")
    lines.append(f"Group: {notification.group_key}")
    message.set_content("\n".join(lines))
    return message


class EmailReceiver:
    def __init__(
        self,
        name: str,
        config: EmailConfig,
        env: Mapping[str, str],
        *,
        grafana_url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.env = env
        self.grafana_url = grafana_url
        self.ssl_context = ssl_context

    async def send(self, notification: Notification) -> None:
        secrets = Secrets(self.name, self.env)
        username = secrets.optional(self.config.username_env)
        password = secrets.optional(self.config.password_env)
        if self.config.username_env and not username:
            raise secrets.error(
                f"username_env: environment variable {self.config.username_env} is not set",
                retryable=False,
            )
        if username and not password:
            raise secrets.error(
                f"password_env: environment variable {self.config.password_env} is not set",
                retryable=False,
            )
        message = email_message(
            notification, sender=self.config.sender, to=self.config.to, grafana_url=self.grafana_url
        )
        await asyncio.to_thread(self._send_sync, message, username, password, secrets)

    def _send_sync(
        self, message: EmailMessage, username: str | None, password: str | None, secrets: Secrets
    ) -> None:
        cfg = self.config
        target = f"{cfg.smtp_host}:{cfg.smtp_port}"
        timeout_s = cfg.timeout.total_seconds()
        try:
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=timeout_s) as smtp:
                smtp.ehlo()
                if cfg.starttls:
                    if not smtp.has_extn("starttls"):
                        raise secrets.error(
                            f"SMTP {target} does not offer STARTTLS and starttls is required",
                            retryable=False,
                        )
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                    smtp.ehlo()
                if username and password:
                    smtp.login(username, password)
                smtp.send_message(message)
        except DeliveryError:
            raise
        except UnicodeEncodeError:
            # smtplib sends AUTH credentials as ASCII only (its text names the characters).
            raise secrets.error(
                f"SMTP {target}: the username or password is not ASCII, which SMTP AUTH "
                "(smtplib) cannot send",
                retryable=False,
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise secrets.error(
                f"SMTP {target}: authentication refused: {_reply(exc, secrets)}", retryable=False
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(
                f"{to} ({_reply_text(code, reply, secrets)})"
                for to, (code, reply) in exc.recipients.items()
            )
            raise secrets.error(
                f"SMTP {target}: recipients refused: {refused}", retryable=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise secrets.error(
                f"SMTP {target}: {type(exc).__name__}: {_reply(exc, secrets)}",
                retryable=exc.smtp_code < 500,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise secrets.error(
                f"SMTP {target}: {type(exc).__name__}: {exc}", retryable=True
            ) from None


def _reply_text(code: int, reply: bytes | str, secrets: Secrets) -> str:
    """A server's reply as text (not a bytes repr, whose ``\\xNN`` would hide a secret's
    bytes from redaction), redacted whole, then cut."""
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {excerpt(secrets.redact(text), ANSWER_EXCERPT_CHARS)}"


def _reply(exc: smtplib.SMTPResponseException, secrets: Secrets) -> str:
    return _reply_text(exc.smtp_code, exc.smtp_error, secrets)
