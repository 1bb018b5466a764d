"""The routing tree, with Prometheus Alertmanager's semantics (``dispatch/route.go``).

- A node matches an alert when all its matchers (``match`` and ``match_re``) hold.
- Matching is depth first, left to right. Among a node's children, the first that
  matches ends the search at that level unless it sets ``continue: true``.
- A node none of whose children matched is itself the match. The root matches
  every alert, so every alert reaches at least one receiver.
- ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and
  ``repeat_interval`` are inherited from the parent when a node leaves them unset;
  the root's defaults are Alertmanager's (30s, 5m, 4h, group by nothing).
- ``mute_time_intervals`` and ``active_time_intervals`` name the policy's
  ``time_intervals``; as in Alertmanager they are *not* inherited (each node has only its
  own) and the root may not have any. The dispatcher applies them when a group is
  flushed (:mod:`tokengov.sinks.router.timemute`).
- tokengov's additions: when only the root matched, a team's own receiver
  (``teams.<team>.receiver``) is used instead of the default receiver; and a
  ``receiver_failing`` alert always goes to the default receiver, whatever the tree
  says (a failing receiver must not be the one asked to report its own failure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from tokengov.core.matchers import Matcher
from tokengov.core.policy import GROUP_BY_ALL, Policy, Route, TeamPolicy
from tokengov.core.timeintervals import Intervener

__all__ = [
    "DEFAULT_GROUP_INTERVAL",
    "DEFAULT_GROUP_WAIT",
    "DEFAULT_REPEAT_INTERVAL",
    "RouteMatch",
    "RouteNode",
    "RouteTree",
    "TraceStep",
]

DEFAULT_GROUP_WAIT: Final = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL: Final = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL: Final = timedelta(hours=4)
RECEIVER_FAILING: Final = "receiver_failing"


@dataclass(frozen=True)
class RouteOpts:
    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta


@dataclass(eq=False)
class RouteNode:
    """One node with its effective (inherited) options."""

    path: str  # where it is in the policy file: routes, routes.routes[0], …
    matchers: tuple[Matcher, ...]
    opts: RouteOpts
    continue_: bool
    children: list[RouteNode] = field(default_factory=list)
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    @classmethod
    def build(cls, route: Route, parent: RouteOpts | None, path: str = "routes") -> RouteNode:
        base = parent or RouteOpts(
            receiver="",
            group_by=frozenset(),
            group_by_all=False,
            group_wait=DEFAULT_GROUP_WAIT,
            group_interval=DEFAULT_GROUP_INTERVAL,
            repeat_interval=DEFAULT_REPEAT_INTERVAL,
        )
        group_by, group_by_all = base.group_by, base.group_by_all
        if route.group_by is not None:
            group_by_all = GROUP_BY_ALL in route.group_by
            group_by = frozenset(g for g in route.group_by if g != GROUP_BY_ALL)
        opts = RouteOpts(
            receiver=route.receiver or base.receiver,
            group_by=group_by,
            group_by_all=group_by_all,
            group_wait=route.group_wait if route.group_wait is not None else base.group_wait,
            group_interval=(
                route.group_interval if route.group_interval is not None else base.group_interval
            ),
            repeat_interval=(
                route.repeat_interval if route.repeat_interval is not None else base.repeat_interval
            ),
        )
        node = cls(path, route.parsed_matchers, opts, route.continue_)
        node.mute_time_intervals = tuple(route.mute_time_intervals)
        node.active_time_intervals = tuple(route.active_time_intervals)
        node.children = [
            cls.build(child, opts, f"{path}.routes[{i}]") for i, child in enumerate(route.routes)
        ]
        return node

    def matches_self(self, labels: Mapping[str, str]) -> Matcher | None:
        """The first matcher that fails, or None when the node matches."""
        for matcher in self.matchers:
            if not matcher.matches(labels):
                return matcher
        return None

    def match(self, labels: Mapping[str, str]) -> list[RouteNode]:
        """Alertmanager's ``Route.Match``: depth first, left to right, honouring ``continue``."""
        if self.matches_self(labels) is not None:
            return []
        found: list[RouteNode] = []
        for child in self.children:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]

    def describe(self) -> str:
        return ", ".join(str(m) for m in self.matchers) or "(matches everything)"


@dataclass(frozen=True)
class RouteMatch:
    """A node an alert matched, and the receiver that will be told."""

    node: RouteNode
    receiver: str
    team_receiver: bool = False  # True: the team's own receiver replaced the default

    @property
    def route_id(self) -> str:
        return f"{self.node.path}>{self.receiver}"


@dataclass(frozen=True)
class TraceStep:
    """One step of :meth:`RouteTree.explain`, for ``tokengov alerts test-route``."""

    depth: int
    path: str
    matched: bool
    detail: str


class RouteTree:
    def __init__(
        self,
        root: RouteNode,
        teams: Mapping[str, TeamPolicy] | None = None,
        *,
        intervals: Intervener | None = None,
        send_resolved: Mapping[str, bool] | None = None,
    ) -> None:
        self.root = root
        self.teams = dict(teams or {})
        self.intervals = intervals or Intervener()
        self._send_resolved = dict(send_resolved or {})
        self._by_path = {node.path: node for node in self.nodes()}

    @classmethod
    def from_policy(cls, policy: Policy) -> RouteTree:
        return cls(
            RouteNode.build(policy.routes, None),
            policy.teams,
            intervals=Intervener(policy.time_intervals),
            send_resolved={name: r.send_resolved for name, r in policy.receivers.items()},
        )

    def node_at(self, path: str) -> RouteNode | None:
        """The node at a policy path (``routes.routes[0]``), None when the tree has none."""
        return self._by_path.get(path)

    def send_resolved(self, receiver: str) -> bool:
        """Whether ``receiver`` is told about resolutions (its ``send_resolved``)."""
        return self._send_resolved.get(receiver, True)

    def _team_receiver(self, labels: Mapping[str, str]) -> str | None:
        team = self.teams.get(labels.get("team", ""))
        return team.receiver if team and team.receiver else None

    def match(self, labels: Mapping[str, str]) -> list[RouteMatch]:
        if labels.get("kind") == RECEIVER_FAILING:
            return [RouteMatch(self.root, self.root.opts.receiver)]
        nodes = self.root.match(labels)
        if nodes == [self.root]:
            team_receiver = self._team_receiver(labels)
            if team_receiver:
                return [RouteMatch(self.root, team_receiver, team_receiver=True)]
        return [RouteMatch(n, n.opts.receiver) for n in nodes]

    def nodes(self) -> list[RouteNode]:
        out: list[RouteNode] = []

        def walk(node: RouteNode) -> None:
            out.append(node)
            for child in node.children:
                walk(child)

        walk(self.root)
        return out

    def explain(self, labels: Mapping[str, str]) -> list[TraceStep]:
        """Every node visited while matching, with why it matched or not."""
        steps: list[TraceStep] = []
        if labels.get("kind") == RECEIVER_FAILING:
            note = "receiver_failing alerts always go to the default receiver"
            return [TraceStep(0, self.root.path, True, note)]

        def visit(node: RouteNode, depth: int) -> bool:
            failed = node.matches_self(labels)
            if failed is not None:
                got = labels.get(failed.name)
                shown = f'"{got}"' if got is not None else "absent"
                why = f"{failed} fails ({failed.name} is {shown})"
                steps.append(TraceStep(depth, node.path, False, why))
                return False
            steps.append(TraceStep(depth, node.path, True, f"matches {node.describe()}"))
            any_child = False
            for i, child in enumerate(node.children):
                if not visit(child, depth + 1):
                    continue
                any_child = True
                if child.continue_:
                    note = "continue: true, so the next sibling is tried too"
                    steps.append(TraceStep(depth + 1, child.path, True, note))
                    continue
                skipped = len(node.children) - i - 1
                if skipped:
                    note = f"continue: false, so {skipped} later sibling(s) are not tried"
                    steps.append(TraceStep(depth + 1, child.path, True, note))
                break
            if node.children and not any_child:
                note = "no child route matched: this route is the match"
                steps.append(TraceStep(depth, node.path, True, note))
            return True

        visit(self.root, 0)
        return steps
