"""The notification log entry and Alertmanager's decision "does this group need a
notification now?" (``notify.DedupStage.needsUpdate``)."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["NflogEntry", "NotifyReason", "needs_update"]

NotifyReason = Literal[
    "first notification",
    "new alerts in group",
    "some alerts resolved",
    "all alerts resolved",
    "repeat interval elapsed",
]


@dataclass(frozen=True)
class NflogEntry:
    """What was last delivered for one group to one receiver, and when."""

    group_key: str
    receiver: str
    firing: frozenset[str]  # fingerprints
    resolved: frozenset[str]
    ts: datetime


def needs_update(
    entry: NflogEntry | None,
    firing: Set[str],
    resolved: Set[str],
    repeat_interval: timedelta,
    now: datetime,
    *,
    send_resolved: bool = True,
) -> NotifyReason | None:
    """Why the group must be notified now, or None when the receiver already knows.

    - never notified: notify when something fires (a group of resolved alerts the
      receiver never heard of is not news);
    - a firing alert the receiver was not told about: notify;
    - everything resolved: notify if the last notification had firing alerts;
    - some alerts resolved since the last notification: notify, if the receiver has
      ``send_resolved`` (the all-resolved case above is decided regardless, so that the
      notification log forgets the firing alerts);
    - nothing changed: notify again once ``repeat_interval`` has passed.
    """
    if entry is None:
        return "first notification" if firing else None
    if not firing <= entry.firing:
        return "new alerts in group" if entry.firing else "first notification"
    if not firing:
        return "all alerts resolved" if entry.firing else None
    if send_resolved and not resolved <= entry.resolved:
        return "some alerts resolved"
    if entry.ts < now - repeat_interval:
        return "repeat interval elapsed"
    return None
