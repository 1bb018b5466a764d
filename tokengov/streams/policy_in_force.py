"""The policy in force, prepared for the processors and swapped on reload (SIGHUP)."""

from __future__ import annotations

import logging

from tokengov.core.policy import Policy
from tokengov.core.worker_context import PolicyHolder
from tokengov.streams.core.policy_index import PolicyView

__all__ = ["ViewHolder"]

log = logging.getLogger(__name__)


class ViewHolder:
    def __init__(self, holder: PolicyHolder) -> None:
        self.holder = holder
        self.view = PolicyView(holder.current)
        holder.subscribe(self._swap)

    def _swap(self, policy: Policy) -> None:
        self.view = PolicyView(policy)
        log.warning(
            "streams: policy generation %d in force (%d cost profiles, %d budgets); state kept",
            self.holder.generation,
            len(policy.cost_profiles),
            len(policy.budgets),
        )
