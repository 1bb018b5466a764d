"""The token-debt detectors, one wasteful pattern each."""

from __future__ import annotations

from tokengov.streams.debt.detectors.agent_design import ToolDefinitionBloat
from tokengov.streams.debt.detectors.base import Detector, JudgeContext, TaskContext, Verdict
from tokengov.streams.debt.detectors.context import HistoryResend
from tokengov.streams.debt.detectors.memory import MemoryReplay
from tokengov.streams.debt.detectors.orchestration import FullContextHandoff
from tokengov.streams.debt.detectors.retries import RetryWithoutBackoff
from tokengov.streams.debt.detectors.retrieval import RetrievalWaste
from tokengov.streams.debt.detectors.system_prompt import SystemPromptGrowth
from tokengov.streams.debt.detectors.tool_usage import ToolResponseBloat

__all__ = [
    "Detector",
    "FullContextHandoff",
    "HistoryResend",
    "JudgeContext",
    "MemoryReplay",
    "RetrievalWaste",
    "RetryWithoutBackoff",
    "SystemPromptGrowth",
    "TaskContext",
    "ToolDefinitionBloat",
    "ToolResponseBloat",
    "Verdict",
    "all_detectors",
]


def all_detectors() -> list[Detector]:
    """One instance of every detector, in the order of the areas."""
    return [
        ToolDefinitionBloat(),
        HistoryResend(),
        FullContextHandoff(),
        MemoryReplay(),
        RetrievalWaste(),
        ToolResponseBloat(),
        RetryWithoutBackoff(),
        SystemPromptGrowth(),
    ]
