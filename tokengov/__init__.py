"""tokengov: real-time token governance for agentic AI.

The SDK an agent uses (``pip install tokengov``)::

    from tokengov import TokenEmitter, Guard, TaskPaused
    from tokengov import load_connection   # TLS/SASL from TOKENGOV_KAFKA_*

Its names are imported on first use (PEP 562), so ``import tokengov`` costs nothing. The
layers under this package: ``tokengov.core`` (contract, decoding, pricing, policy, topics,
settings, Kafka, errors), ``tokengov.producers`` (the SDK), ``tokengov.streams`` and
``tokengov.sinks`` (the worker's roles; ``pip install 'tokengov[server]'``),
``tokengov.integrations`` (optional extras beside the SDK: ``tokengov[litellm]``) and
``tokengov.app`` (the CLI, the embedded stack, the worker assembly, the demo, benchmarks).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "EmitterStats",
    "Guard",
    "KafkaConnection",
    "TaskContext",
    "TaskPaused",
    "TokenEmitter",
    "Verdict",
    "__version__",
    "load_connection",
]

#: The public SDK names and the module that defines each.
_SDK: dict[str, str] = {
    "TokenEmitter": "tokengov.producers.emitter",
    "TaskContext": "tokengov.producers.emitter",
    "EmitterStats": "tokengov.producers.emitter",
    "Guard": "tokengov.producers.guard",
    "TaskPaused": "tokengov.producers.guard",
    "Verdict": "tokengov.producers.guard",
    "KafkaConnection": "tokengov.core.kafka",  # TLS/SASL: TOKENGOV_KAFKA_* (load_connection)
    "load_connection": "tokengov.core.kafka",
}

if TYPE_CHECKING:
    from tokengov.core.kafka import KafkaConnection, load_connection
    from tokengov.producers.emitter import EmitterStats, TaskContext, TokenEmitter
    from tokengov.producers.guard import Guard, TaskPaused, Verdict


def __getattr__(name: str) -> Any:
    module = _SDK.get(name)
    if module is None:
        raise AttributeError(f"module 'tokengov' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SDK})
