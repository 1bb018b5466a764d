"""A local disk spool: messages the broker could not take, kept in order until it returns.

One segment file after another (``spool-<seq>.log``); each line is
``<key>\\t<value>`` where the key is a task id (no tabs or newlines: the
contract forbids control characters) and the value one JSON document (no raw
newlines: JSON escapes them). Segments are fsynced when closed, replayed
oldest first, and deleted only after every message in them was delivered.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["Spool"]

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._writer: BinaryIO | None = None
        self._writer_path: Path | None = None
        self.pending_messages = sum(1 for _ in self._all_lines())

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("spool-*.log"), key=lambda p: int(p.stem.split("-")[1]))

    def __bool__(self) -> bool:
        return self.pending_messages > 0

    def _next_path(self) -> Path:
        segments = self.segments()
        last = int(segments[-1].stem.split("-")[1]) if segments else 0
        return self.directory / f"spool-{last + 1:012d}.log"

    def append(self, key: bytes, value: bytes) -> None:
        if self._writer is None:
            self._writer_path = self._next_path()
            self._writer = self._writer_path.open("ab")
        self._writer.write(key + b"\t" + value + b"\n")
        self.pending_messages += 1

    def seal(self) -> None:
        """Close the open segment, durably (flush + fsync)."""
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer.close()
            self._writer = None
            self._writer_path = None

    def read(self, segment: Path) -> Iterator[tuple[bytes, bytes]]:
        with segment.open("rb") as fh:
            for line_no, line in enumerate(fh, 1):
                line = line.rstrip(b"\n")
                if not line:
                    continue
                key, sep, value = line.partition(b"\t")
                if not sep:
                    aside = self.directory / "damaged.log"
                    with aside.open("ab") as out:
                        out.write(line + b"\n")
                    log.error(
                        "spool %s line %d is damaged; kept aside in %s", segment, line_no, aside
                    )
                    continue
                yield key, value

    def _all_lines(self) -> Iterator[tuple[bytes, bytes]]:
        for segment in self.segments():
            yield from self.read(segment)

    def count(self, segment: Path) -> int:
        return sum(1 for _ in self.read(segment))

    def remove(self, segment: Path, messages: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
        self.pending_messages = max(0, self.pending_messages - messages)
