"""How many times a message was tried, kept on disk so that a crash-loop on one message ends.

A message can stop the worker in two ways: its handling raises (stage 1 then
tries it again in the same process, which is exact: positions make
re-processing idempotent), or it kills the process (a crash in C, memory,
a signal) and a restarted worker meets it again at the same committed offset.
For the second, the stage writes one small record per partition *before* it
handles a message — ``{"suspects": {"o": k}, "handling": o}``: message ``o``
started ``k`` times and not finished — and after it, drops ``o`` (and every
offset before it) from the suspects. A worker that died handling ``o`` leaves
it there; its successor replays the messages before ``o`` (uncommitted), meets
``o`` again and counts on from ``k``. At ``streams.max_message_attempts`` the
message is skipped (dead-lettered whole with an ERROR log naming topic,
partition and offset).

One file per partition under ``<worker state dir>/attempts/``, overwritten in
place with ``pwrite`` (one system call; the page cache survives the process,
which is what this guards against — a machine crash is not a poison message).
Workers that share a data directory share these files, which is right: the
partition's next owner reads what its last owner left.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson

__all__ = ["AttemptLog"]

log = logging.getLogger(__name__)

_RECORD_BYTES: Final = 512
_MAX_SUSPECTS: Final = 8


@dataclass(slots=True)
class _Slot:
    fd: int
    #: offset -> times its handling was started and did not end (deaths and failures)
    suspects: dict[int, int] = field(default_factory=dict)
    handling: int | None = None  # the offset being handled now


class AttemptLog:
    def __init__(self, directory: Path, topic: str) -> None:
        self.directory = directory
        self.topic = topic
        self._slots: dict[int, _Slot] = {}
        self.broken = False  # the directory cannot be written: count in memory only

    def _slot(self, partition: int) -> _Slot:
        slot = self._slots.get(partition)
        if slot is not None:
            return slot
        path = self.directory / f"{self.topic}-{partition}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            self._broken(exc)
            fd = -1
        slot = self._slots[partition] = _Slot(fd)
        if fd < 0:
            return slot
        try:
            data = os.pread(fd, _RECORD_BYTES, 0).rstrip(b" \n\x00")
            if data:
                doc = orjson.loads(data)
                slot.suspects = {int(o): int(n) for o, n in doc["suspects"].items()}
                slot.handling = None if doc["handling"] is None else int(doc["handling"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("attempt record %s unreadable, starting afresh: %s", path, exc)
        if slot.handling is not None:
            log.error(
                "%s partition %d: the last worker died while handling offset %d (attempt %d)",
                self.topic,
                partition,
                slot.handling,
                slot.suspects.get(slot.handling, 0),
            )
            slot.handling = None
        return slot

    def _broken(self, exc: OSError) -> None:
        if not self.broken:
            self.broken = True
            log.error(
                "cannot keep attempt records in %s (%s): a message that kills the worker will "
                "not be skipped across restarts (failures in this process still are)",
                self.directory,
                exc,
            )

    def _write(self, slot: _Slot) -> None:
        while len(slot.suspects) > _MAX_SUSPECTS:
            del slot.suspects[min(slot.suspects)]
        if slot.fd < 0:
            return
        record = orjson.dumps(
            {"suspects": slot.suspects, "handling": slot.handling},
            option=orjson.OPT_NON_STR_KEYS,
        )
        try:
            os.pwrite(slot.fd, record.ljust(_RECORD_BYTES - 1) + b"\n", 0)
        except OSError as exc:
            self._broken(exc)

    def start(self, partition: int, offset: int) -> int:
        """Record that the message at ``offset`` is being handled; returns which attempt this
        is (1 for a message not tried before, more after deaths or failures)."""
        slot = self._slot(partition)
        attempts = slot.suspects[offset] = slot.suspects.get(offset, 0) + 1
        slot.handling = offset
        self._write(slot)
        return attempts

    def failed(self, partition: int, offset: int) -> int:
        """Its handling raised: one more attempt, still handling. Returns the count."""
        slot = self._slot(partition)
        attempts = slot.suspects[offset] = slot.suspects.get(offset, 0) + 1
        self._write(slot)
        return attempts

    def done(self, partition: int, offset: int) -> None:
        """The message was handled (processed, dead-lettered or skipped): it and every offset
        before it are suspects no more."""
        slot = self._slot(partition)
        slot.handling = None
        for suspect in [o for o in slot.suspects if o <= offset]:
            del slot.suspects[suspect]
        self._write(slot)

    def close(self) -> None:
        for slot in self._slots.values():
            if slot.fd >= 0:
                os.close(slot.fd)
        self._slots.clear()
