"""A small typed adapter over grafana-client: the few Grafana HTTP API calls tokengov makes.

grafana-client returns raw JSON dicts and raises its own exceptions; neither leaves this
module. Callers get frozen dataclasses and :mod:`tokengov.sinks.grafana.errors`.

Endpoints used (Grafana HTTP API): ``GET /api/frontend/settings`` (version),
``GET|POST|PUT /api/folders[/:uid]``, ``GET|POST|PUT /api/datasources[/uid/:uid]``,
``POST /api/dashboards/db``, ``GET|POST /api/annotations``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)
from pydantic import SecretStr

from tokengov.sinks.grafana.datasource import ClickHouseDatasource
from tokengov.sinks.grafana.errors import (
    GrafanaAPIError,
    GrafanaAuthError,
    GrafanaConfigError,
    GrafanaUnreachable,
    GrafanaVersionError,
)

__all__ = [
    "MIN_GRAFANA_VERSION",
    "Annotation",
    "DashboardRef",
    "GrafanaAPI",
    "StoredAnnotation",
    "Upsert",
]

log = logging.getLogger(__name__)

# The dashboards are generated for Grafana 11.6's model (schemaVersion 41); older servers
# cannot load them.
MIN_GRAFANA_VERSION: Final = (11, 6, 0)

Upsert = Literal["created", "updated"]
T = TypeVar("T")


@dataclass(frozen=True)
class DashboardRef:
    uid: str
    url: str
    version: int


@dataclass(frozen=True)
class Annotation:
    """An organization annotation (shown on every dashboard that queries its tags)."""

    time: datetime
    text: str
    tags: tuple[str, ...]
    time_end: datetime | None = None


@dataclass(frozen=True)
class StoredAnnotation:
    id: int
    time: datetime
    tags: tuple[str, ...]


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: annotations need timezone-aware times")
    return int(t.timestamp() * 1000)


def _version(text: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if m is None:
        raise GrafanaVersionError(f"Grafana reported an unreadable version {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GrafanaAPIError(
            200, f"{what}: expected a JSON object from Grafana, got {value!r:.80}"
        )
    return value


class GrafanaAPI:
    """One Grafana, reached with a service-account token."""

    def __init__(self, url: str, token: SecretStr | None, *, timeout_s: float = 10.0) -> None:
        if not url:
            raise GrafanaConfigError("no Grafana URL: set TOKENGOV_GRAFANA_URL or pass --url")
        if token is None or not token.get_secret_value():
            raise GrafanaConfigError(
                "no Grafana token: set TOKENGOV_GRAFANA_TOKEN to a service-account token "
                "(Administration → Users and access → Service accounts; role Editor, or Admin "
                "to manage the data source)"
            )
        self.url = url.rstrip("/")
        self._api = GrafanaApi.from_url(
            self.url, credential=token.get_secret_value(), timeout=timeout_s
        )

    def close(self) -> None:
        self._api.client.s.close()

    def __enter__(self) -> GrafanaAPI:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- error mapping ----------------------------------------------------------------------

    @contextmanager
    def _calling(self, what: str, *, legacy_api: bool = False) -> Iterator[None]:
        try:
            yield
        except GrafanaUnauthorizedError as exc:
            raise GrafanaAuthError(
                401,
                f"Grafana at {self.url} rejected the token while trying to {what} (401): check "
                "TOKENGOV_GRAFANA_TOKEN — a service-account token of this Grafana, not expired",
            ) from exc
        except GrafanaClientError as exc:
            if exc.status_code == 403:
                raise GrafanaAuthError(
                    403,
                    f"Grafana at {self.url} refused to {what} (403 access denied): give the "
                    "service account the Editor role (Admin to create or update data sources)",
                ) from exc
            if exc.status_code == 404 and legacy_api:
                raise GrafanaVersionError(
                    f"Grafana at {self.url} has no {what} endpoint (404): tokengov needs "
                    f"Grafana ≥ {'.'.join(map(str, MIN_GRAFANA_VERSION))} with the /api HTTP API"
                ) from exc
            raise GrafanaAPIError(
                exc.status_code, f"cannot {what}: Grafana answered {exc.status_code}: {exc.message}"
            ) from exc
        except GrafanaServerError as exc:
            raise GrafanaAPIError(
                exc.status_code, f"cannot {what}: Grafana failed ({exc.status_code}): {exc.message}"
            ) from exc
        except GrafanaTimeoutError as exc:
            raise GrafanaUnreachable(
                f"Grafana at {self.url} timed out while trying to {what}"
            ) from exc
        except (GrafanaException, niquests.exceptions.RequestException) as exc:
            raise GrafanaUnreachable(
                f"cannot reach Grafana at {self.url} to {what}: {exc}"
            ) from exc

    def _get_or_none(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            with self._calling(what):
                return call()
        except GrafanaAPIError as exc:
            if exc.status == 404:
                return None
            raise

    # --- calls ------------------------------------------------------------------------------

    def version(self) -> tuple[int, int, int]:
        """The server's version; raises GrafanaVersionError below :data:`MIN_GRAFANA_VERSION`."""
        with self._calling("read its version"):
            info = self._api.health.check()
        raw = _dict(info, "build info").get("version") if info is not None else None
        if not isinstance(raw, str):
            raise GrafanaVersionError(f"Grafana at {self.url} did not report its version")
        version = _version(raw)
        if version < MIN_GRAFANA_VERSION:
            raise GrafanaVersionError(
                f"Grafana at {self.url} is {raw}; tokengov's dashboards need Grafana ≥ "
                f"{'.'.join(map(str, MIN_GRAFANA_VERSION))} (dashboard schemaVersion 41)"
            )
        return version

    def ensure_folder(self, uid: str, title: str) -> Upsert:
        """Create the folder, or retitle it if it exists under another title."""
        existing = self._get_or_none("read folder", lambda: self._api.folder.get_folder(uid))
        if existing is None:
            with self._calling(f"create folder {uid!r}"):
                self._api.folder.create_folder(title, uid=uid)
            return "created"
        if _dict(existing, "folder").get("title") != title:
            with self._calling(f"update folder {uid!r}"):
                self._api.folder.update_folder(uid, title=title, overwrite=True)
        return "updated"

    def datasource_exists(self, uid: str) -> bool:
        found = self._get_or_none(
            "read data source", lambda: self._api.datasource.get_datasource_by_uid(uid)
        )
        return found is not None

    def upsert_datasource(self, datasource: ClickHouseDatasource) -> Upsert:
        body = datasource.api_body()
        if self.datasource_exists(datasource.uid):
            with self._calling(f"update data source {datasource.uid!r}"):
                self._api.datasource.update_datasource_by_uid(datasource.uid, body)
            return "updated"
        with self._calling(f"create data source {datasource.uid!r}"):
            self._api.datasource.create_datasource(body)
        return "created"

    def upsert_dashboard(
        self, model: dict[str, Any], *, folder_uid: str, message: str
    ) -> DashboardRef:
        """Create or overwrite the dashboard with ``model['uid']`` in ``folder_uid``."""
        payload = {
            "dashboard": {**model, "id": None},
            "folderUid": folder_uid,
            "overwrite": True,
            "message": message,
        }
        with self._calling(f"save dashboard {model.get('uid')!r}", legacy_api=True):
            answer = _dict(self._api.dashboard.update_dashboard(payload), "dashboard save")
        return DashboardRef(
            uid=str(answer.get("uid", model.get("uid"))),
            url=str(answer.get("url", "")),
            version=int(answer.get("version", 0)),
        )

    def find_annotations(
        self, *, tags: Sequence[str], since: datetime, until: datetime, limit: int
    ) -> list[StoredAnnotation]:
        """Organization annotations carrying every tag in ``tags`` between the two times."""
        with self._calling("list annotations"):
            rows = self._api.annotations.find_annotations(
                time_from=_ms(since),
                time_to=_ms(until),
                tags=list(tags),
                limit=limit,
                ann_type="annotation",
            )
        if not isinstance(rows, list):
            raise GrafanaAPIError(200, f"list annotations: expected a JSON array, got {rows!r:.80}")
        found: list[StoredAnnotation] = []
        for row in rows:
            item = _dict(row, "annotation")
            found.append(
                StoredAnnotation(
                    id=int(item["id"]),
                    time=datetime.fromtimestamp(int(item.get("time", 0)) / 1000, tz=UTC),
                    tags=tuple(str(t) for t in item.get("tags") or ()),
                )
            )
        return found

    def create_annotation(self, annotation: Annotation) -> int:
        with self._calling("create annotation"):
            answer = self._api.annotations.add_annotation(
                time_from=_ms(annotation.time),
                time_to=_ms(annotation.time_end) if annotation.time_end else None,
                tags=list(annotation.tags),
                text=annotation.text,
            )
        return int(_dict(answer, "annotation").get("id", 0))
