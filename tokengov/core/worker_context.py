"""What a running worker hands to each of its roles (streams, sink, router, otlp).

Every role registers itself on one Faust app with ``register(app, ctx)``; in
embedded mode (``--role all``) one process runs them all, which is what lets
the ClickHouse writer own the chdb store while the others use it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tokengov.core.contracts import CallEvent, Outcome
from tokengov.core.errors import PolicyError
from tokengov.core.kafka import KafkaConnection
from tokengov.core.policy import Policy, load_policy
from tokengov.core.recovery import RecoverySeed
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics

__all__ = ["ROLES", "PolicyHolder", "Role", "WorkerContext"]

log = logging.getLogger(__name__)

Role = Literal["streams", "sink", "router", "otlp"]
ROLES: tuple[Role, ...] = ("streams", "sink", "router", "otlp")


class PolicyHolder:
    """The policy in force. ``reload()`` swaps in a new file only when it is valid;
    a broken one is refused, loudly, and the old one kept. Listeners hear of every swap."""

    def __init__(self, policy: Policy, path: Path | None = None) -> None:
        self._policy = policy
        self._path = path
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Policy], None]] = []
        self.generation = 1
        #: reloads by result: applied, refused (an invalid file), no_file (/metrics)
        self.reloads: Counter[str] = Counter()

    @classmethod
    def from_file(cls, path: Path) -> PolicyHolder:
        return cls(load_policy(path), path)

    @property
    def current(self) -> Policy:
        return self._policy

    @property
    def path(self) -> Path | None:
        return self._path

    def subscribe(self, listener: Callable[[Policy], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Re-read the file. True when the new policy is in force."""
        if self._path is None:
            log.warning("policy reload requested but the policy was not loaded from a file")
            self.reloads["no_file"] += 1
            return False
        try:
            new = load_policy(self._path)
        except PolicyError as exc:
            log.error("policy reload REFUSED, keeping the previous policy in force:\n%s", exc)
            self.reloads["refused"] += 1
            return False
        with self._lock:
            self._policy = new
            self.generation += 1
            self.reloads["applied"] += 1
        log.warning("policy reloaded from %s (generation %d)", self._path, self.generation)
        for listener in self._listeners:
            listener(new)
        return True


@dataclass
class WorkerContext:
    """Everything a role needs; built by the entrypoint from :class:`Settings`."""

    settings: Settings
    policy: PolicyHolder
    topics: Topics = field(default_factory=Topics)
    #: Read from the store by the entrypoint when the streams' state topics were empty
    #: (an embedded restart); None when the state is intact. See tokengov/core/recovery.py.
    seed: RecoverySeed | None = None
    #: The calls and outcomes of the token-debt horizon, from the store (every start).
    debt_history: tuple[CallEvent | Outcome, ...] = ()

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def kafka(self) -> KafkaConnection:
        """The Kafka connection every client of the worker uses (``TOKENGOV_KAFKA_*``)."""
        return self.settings.kafka

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir
