"""The embedded stack on one machine: broker + worker (every role), supervised.

:class:`LocalStack` locks the data directory (one stack per directory: chdb
allows one process per store), starts the Tansu broker and creates the topics,
starts ``tokengov worker --role all`` as a child process, and stops both on
:meth:`stop` — the worker first, with SIGTERM so that it commits its offsets and
closes the store, then the broker — leaving no process behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.app.local.tls import TlsMaterial, TlsTerminator
from tokengov.core.errors import BrokerError, TokenGovError
from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics, ensure_topics, topic_specs

__all__ = ["DataDirLock", "LocalStack", "StackInfo"]

log = logging.getLogger(__name__)


class DataDirLock:
    """An exclusive lock on a data directory, held for the life of the stack."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "tokengov.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise TokenGovError(
                f"data directory {self.path.parent} is in use by {holder}; stop it first or "
                "choose another with --data-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"tokengov (pid {os.getpid()})")
        fh.flush()
        self._fh = fh

    def acquire_or_fail_fast(self) -> None:
        """Check that nobody holds the lock (raises like :meth:`acquire`), and let go again."""
        self.acquire()
        self.release()

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


@dataclass(frozen=True)
class StackInfo:
    bootstrap: str
    data_dir: Path
    policy: Path
    clickhouse_dsn: str
    query_endpoint: str
    worker_pid: int | None


class LocalStack:
    def __init__(
        self,
        settings: Settings,
        policy: Path,
        *,
        port: int,
        topics: Topics | None = None,
        topic_prefix: str = "",
        event_partitions: int | None = None,
        worker_roles: str = "all",
        worker_stdout: IO[Any] | int | None = None,
        worker_stderr: IO[Any] | int | None = None,
        worker_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        tls: TlsMaterial | None = None,
    ) -> None:
        """``tls``: serve Kafka over mutual TLS on ``port`` (a terminator in front of Tansu,
        which listens on a private loopback port); every client of the stack uses it."""
        self.settings = settings
        self.policy = policy
        self.topic_prefix = topic_prefix
        self.topics = topics or Topics.with_prefix(topic_prefix)
        self.event_partitions = event_partitions or settings.event_partitions
        self.worker_roles = worker_roles
        self.worker_stdout = worker_stdout
        self.worker_stderr = worker_stderr
        self.worker_args = list(worker_args)
        self.env = env or {}
        self.tls = tls
        self.port = port
        self.broker = EmbeddedBroker(
            settings.broker_state_dir,
            port=free_port() if tls is not None else port,
            advertised_port=port,
        )
        self._terminator: TlsTerminator | None = None
        self.lock = DataDirLock(settings.data_dir)
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """What clients connect to (the TLS listener when ``tls``)."""
        return f"{self.broker.host}:{self.port}"

    @property
    def kafka(self) -> KafkaConnection:
        """The connection a client of this stack uses."""
        if self.tls is not None:
            return self.tls.connection(self.bootstrap)
        return connection(self.bootstrap)

    def info(self) -> StackInfo:
        return StackInfo(
            bootstrap=self.bootstrap,
            data_dir=self.settings.data_dir.resolve(),
            policy=self.policy.resolve(),
            clickhouse_dsn=self.settings.clickhouse_dsn,
            query_endpoint=f"http://{self.settings.query_endpoint}",
            worker_pid=self.worker.pid if self.worker else None,
        )

    def worker_command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "tokengov.app.cli.main",
            "worker",
            "--role",
            self.worker_roles,
            "--bootstrap",
            self.bootstrap,
            "--data-dir",
            str(self.settings.data_dir),
            "--policy",
            str(self.policy),
            # the embedded broker keeps topics in memory: whatever is on them after a restart
            # is new, so the store's totals can be restored without counting anything twice
            "--recover",
            "always",
        ]
        if self.topic_prefix:
            command += ["--topic-prefix", self.topic_prefix]
        return command + self.worker_args

    def start(self, *, with_worker: bool = True) -> StackInfo:
        self.lock.acquire()
        try:
            self.broker.start(detach=False)
            if self.tls is not None:
                self._terminator = TlsTerminator(
                    host=self.broker.host,
                    port=self.port,
                    upstream=(self.broker.host, self.broker.port),
                    cert_file=self.tls.server_cert_file,
                    key_file=self.tls.server_key_file,
                    client_ca_file=self.tls.ca_file,
                )
                self._terminator.start()
            ensure_topics(
                self.kafka,
                topic_specs(prefix=self.topic_prefix, event_partitions=self.event_partitions),
            )
            if with_worker:
                self.start_worker()
        except BaseException:
            self.stop()
            raise
        return self.info()

    def start_worker(self) -> None:
        env = {
            **os.environ,
            "TOKENGOV_KAFKA_BOOTSTRAP": self.bootstrap,
            "TOKENGOV_DATA_DIR": str(self.settings.data_dir),
            "TOKENGOV_QUERY_ENDPOINT": self.settings.query_endpoint,
            "TOKENGOV_EVENT_PARTITIONS": str(self.event_partitions),
            **(self.tls.environment() if self.tls is not None else {}),
            **self.env,
        }
        if self.settings.clickhouse_url:
            env["TOKENGOV_CLICKHOUSE_URL"] = self.settings.clickhouse_url
        self.worker = subprocess.Popen(
            self.worker_command(),
            stdin=subprocess.DEVNULL,
            stdout=self.worker_stdout,
            stderr=self.worker_stderr,
            env=env,
        )
        log.info("worker started (pid %d)", self.worker.pid)

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def wait_ready(self, *, timeout_s: float = 60.0) -> None:
        """Wait for the worker's ready file (written once its roles run)."""
        ready = self.settings.worker_state_dir / "ready.json"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.worker_alive():
                code = self.worker.returncode if self.worker else None
                raise TokenGovError(f"the worker exited (code {code}) before it was ready")
            with contextlib.suppress(OSError, ValueError):
                state = json.loads(ready.read_text())
                if self.worker is not None and state.get("pid") == self.worker.pid:
                    return
            time.sleep(0.1)
        raise TokenGovError(f"the worker was not ready within {timeout_s:.0f}s")

    def stop_worker(self, *, timeout_s: float = 30.0) -> int | None:
        worker, self.worker = self.worker, None
        if worker is None:
            return None
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.error(
                    "worker (pid %d) did not stop within %.0fs; killing it", worker.pid, timeout_s
                )
                worker.kill()
                worker.wait(timeout=10)
        return worker.returncode

    def stop(self) -> None:
        try:
            self.stop_worker()
        finally:
            try:
                if self._terminator is not None:
                    self._terminator.stop()
                    self._terminator = None
                self.broker.stop()
            except BrokerError as exc:
                log.error("%s", exc)
            finally:
                self.lock.release()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
