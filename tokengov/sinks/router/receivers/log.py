"""``type: log``: the notification on the terminal, with rich."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.receivers.render import dashboard_url, facts

__all__ = ["LogReceiver"]

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


class LogReceiver:
    def __init__(
        self, name: str, *, console: Console | None = None, grafana_url: str | None = None
    ) -> None:
        self.name = name
        # stdout: what the receiver shows is the product (logs go to stderr).
        self.console = console or Console(highlight=False)
        self.grafana_url = grafana_url

    async def send(self, notification: Notification) -> None:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold")
        table.add_column()
        for alert in notification.alerts:
            style = "green" if alert.status == "resolved" else _STYLE.get(alert.severity, "")
            table.add_row(f"[{style}]●[/]", f"[{style}]{escape(alert.summary)}[/]", style=None)
            for key, value in facts(alert):
                table.add_row("", f"[dim]{key}:[/] {escape(value)}")
            link = dashboard_url(self.grafana_url, alert)
            if link:
                table.add_row("", f"[dim]Dashboard:[/] {escape(link)}")
        border = "green" if notification.status == "resolved" else "red"
        self.console.print(
            Panel(
                table,
                title=escape(f"{notification.title()} → {self.name}"),
                subtitle=escape(notification.reason),
                border_style=border,
                expand=False,
            )
        )
