"""A stand-in Grafana for the sync tests: a real HTTP server on loopback that implements the
endpoints tokengov uses and rejects request bodies that do not match Grafana's documented
HTTP API (docs/sources/developers/http_api: folder.md, data_source.md, dashboard.md,
annotations.md). No Grafana server can be installed here; this is the closest real thing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tokengov.app.local.broker import free_port

ROLES = {"viewer-token": "Viewer", "editor-token": "Editor", "admin-token": "Admin"}
_RANK = {"Viewer": 0, "Editor": 1, "Admin": 2}

_FOLDER_KEYS = {"uid", "title", "parentUid", "description"}
_FOLDER_UPDATE_KEYS = {"title", "version", "overwrite", "uid", "description"}
_DATASOURCE_KEYS = {
    "id",
    "uid",
    "orgId",
    "name",
    "type",
    "typeLogoUrl",
    "access",
    "url",
    "user",
    "database",
    "basicAuth",
    "basicAuthUser",
    "withCredentials",
    "isDefault",
    "jsonData",
    "secureJsonData",
    "version",
    "readOnly",
}
_ANNOTATION_KEYS = {
    "dashboardUID",
    "dashboardId",
    "panelId",
    "time",
    "timeEnd",
    "tags",
    "text",
    "data",
}
_SAVE_KEYS = {"dashboard", "folderId", "folderUid", "message", "overwrite"}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _uid_problems(where: str, uid: object, *, required: bool) -> list[str]:
    if uid is None:
        return [f"{where}: uid is required"] if required else []
    if not isinstance(uid, str) or not 1 <= len(uid) <= 40:
        return [f"{where}: uid must be a string of 1-40 characters, got {uid!r}"]
    return []


def _unknown(where: str, body: dict[str, Any], allowed: set[str]) -> list[str]:
    return [f"{where}: unknown field {k!r}" for k in sorted(set(body) - allowed)]


def validate_folder(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["folder: body must be a JSON object"]
    problems = _unknown("folder", body, _FOLDER_KEYS)
    if not isinstance(body.get("title"), str) or not body["title"].strip():
        problems.append("folder: title is required")
    return problems + _uid_problems("folder", body.get("uid"), required=False)


def validate_datasource(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["datasource: body must be a JSON object"]
    problems = _unknown("datasource", body, _DATASOURCE_KEYS)
    for key in ("name", "type", "access"):
        if not isinstance(body.get(key), str) or not body[key]:
            problems.append(f"datasource: {key} is required")
    if body.get("access") not in (None, "proxy", "direct"):
        problems.append("datasource: access must be proxy or direct")
    problems += _uid_problems("datasource", body.get("uid"), required=False)
    json_data = body.get("jsonData", {})
    if not isinstance(json_data, dict):
        problems.append("datasource: jsonData must be an object")
    secure = body.get("secureJsonData", {})
    if not isinstance(secure, dict) or not all(isinstance(v, str) for v in secure.values()):
        problems.append("datasource: secureJsonData must map names to strings")
    if body.get("type") == "grafana-clickhouse-datasource" and isinstance(json_data, dict):
        # The plugin's CHConfig (src/types/config.ts).
        for key, kind in (("host", str), ("port", int), ("protocol", str), ("username", str)):
            if not isinstance(json_data.get(key), kind):
                problems.append(f"datasource: jsonData.{key} must be a {kind.__name__}")
        if json_data.get("protocol") not in ("native", "http"):
            problems.append("datasource: jsonData.protocol must be native or http")
    return problems


def validate_dashboard_save(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["dashboard save: body must be a JSON object"]
    problems = _unknown("dashboard save", body, _SAVE_KEYS)
    if not isinstance(body.get("overwrite", False), bool):
        problems.append("dashboard save: overwrite must be a boolean")
    dash = body.get("dashboard")
    if not isinstance(dash, dict):
        return [*problems, "dashboard save: dashboard (the model) is required"]
    problems += _uid_problems("dashboard", dash.get("uid"), required=True)
    if not isinstance(dash.get("title"), str) or not dash["title"].strip():
        problems.append("dashboard: title is required")
    if not _is_int(dash.get("schemaVersion")):
        problems.append("dashboard: schemaVersion (an integer) is required")
    if dash.get("id") is not None and not _is_int(dash.get("id")):
        problems.append("dashboard: id must be null or an integer")
    panels = dash.get("panels")
    if not isinstance(panels, list):
        return [*problems, "dashboard: panels must be a list"]
    ids: set[int] = set()
    for i, panel in enumerate(panels):
        where = f"dashboard.panels[{i}]"
        if not isinstance(panel, dict):
            problems.append(f"{where}: must be an object")
            continue
        if not isinstance(panel.get("type"), str):
            problems.append(f"{where}: type is required")
        pid = panel.get("id")
        if not _is_int(pid) or pid in ids:
            problems.append(f"{where}: id must be a unique integer, got {pid!r}")
        else:
            ids.add(pid)
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(_is_int(grid.get(k)) for k in "hwxy"):
            problems.append(f"{where}: gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: gridPos exceeds the 24-column grid")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.append(f"{where}: targets must be a non-empty list")
            continue
        for j, target in enumerate(targets):
            if not isinstance(target, dict) or not isinstance(target.get("refId"), str):
                problems.append(f"{where}.targets[{j}]: refId is required")
    templating = dash.get("templating", {"list": []})
    for k, var in enumerate(templating.get("list", []) if isinstance(templating, dict) else [None]):
        if not isinstance(var, dict) or not isinstance(var.get("name"), str) or "type" not in var:
            problems.append(f"dashboard.templating.list[{k}]: name and type are required")
    return problems


def validate_annotation(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["annotation: body must be a JSON object"]
    problems = _unknown("annotation", body, _ANNOTATION_KEYS)
    if not isinstance(body.get("text"), str) or not body["text"]:
        problems.append("annotation: text is required")
    if not _is_int(body.get("time")):
        problems.append("annotation: time must be epoch milliseconds (an integer)")
    if body.get("timeEnd") is not None and not _is_int(body["timeEnd"]):
        problems.append("annotation: timeEnd must be epoch milliseconds or null")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append("annotation: tags must be a list of strings")
    if body.get("panelId") is not None and not _is_int(body["panelId"]):
        problems.append("annotation: panelId must be an integer or null")
    return problems


@dataclass
class FakeGrafana:
    version: str = "11.6.0"
    url: str = ""
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _next_id: int = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- plumbing -------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        header = request.headers.get("Authorization", "")
        role = ROLES.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if role is None:
            return web.json_response({"message": "Invalid API key"}, status=401)
        needed = getattr(handler, "role", "Viewer")
        if _RANK[role] < _RANK[needed]:
            return web.json_response({"message": "Access denied"}, status=403)
        return await handler(request)

    async def _body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    def _bad(self, problems: list[str]) -> web.Response:
        self.rejected.extend(problems)
        return web.json_response({"message": "; ".join(problems)}, status=400)

    # --- endpoints ------------------------------------------------------------------------

    async def settings(self, _r: web.Request) -> web.Response:
        return web.json_response({"buildInfo": {"version": self.version, "edition": "Open Source"}})

    async def get_folder(self, r: web.Request) -> web.Response:
        folder = self.folders.get(r.match_info["uid"])
        if folder is None:
            return web.json_response({"message": "folder not found"}, status=404)
        return web.json_response(folder)

    async def create_folder(self, r: web.Request) -> web.Response:
        body = await self._body(r)
        if problems := validate_folder(body):
            return self._bad(problems)
        uid = body.get("uid") or f"f{self._id()}"
        if uid in self.folders:
            return web.json_response(
                {"message": "a folder with that uid already exists"}, status=409
            )
        self.folders[uid] = {"id": self._id(), "uid": uid, "title": body["title"], "version": 1}
        return web.json_response(self.folders[uid])

    async def update_folder(self, r: web.Request) -> web.Response:
        body = await self._body(r)
        folder = self.folders.get(r.match_info["uid"])
        if folder is None:
            return web.json_response({"message": "folder not found"}, status=404)
        if not isinstance(body, dict) or (
            problems := _unknown("folder", body, _FOLDER_UPDATE_KEYS)
        ):
            return self._bad(problems if isinstance(body, dict) else ["folder: object expected"])
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            return web.json_response({"message": "version-mismatch"}, status=412)
        folder.update(title=body.get("title", folder["title"]), version=folder["version"] + 1)
        return web.json_response(folder)

    async def get_datasource(self, r: web.Request) -> web.Response:
        ds = self.datasources.get(r.match_info["uid"])
        if ds is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response({k: v for k, v in ds.items() if k != "secureJsonData"})

    async def create_datasource(self, r: web.Request) -> web.Response:
        body = await self._body(r)
        if problems := validate_datasource(body):
            return self._bad(problems)
        if any(d["name"] == body["name"] for d in self.datasources.values()):
            return web.json_response(
                {"message": "data source with the same name already exists"}, status=409
            )
        uid = body.get("uid") or f"d{self._id()}"
        self.datasources[uid] = {**body, "uid": uid, "id": self._id(), "version": 1}
        return web.json_response(
            {
                "datasource": self.datasources[uid],
                "id": self.datasources[uid]["id"],
                "message": "Datasource added",
                "name": body["name"],
            }
        )

    async def update_datasource(self, r: web.Request) -> web.Response:
        uid = r.match_info["uid"]
        if uid not in self.datasources:
            return web.json_response({"message": "Data source not found"}, status=404)
        body = await self._body(r)
        if problems := validate_datasource(body):
            return self._bad(problems)
        old = self.datasources[uid]
        self.datasources[uid] = {**body, "uid": uid, "id": old["id"], "version": old["version"] + 1}
        return web.json_response(
            {"datasource": self.datasources[uid], "message": "Datasource updated"}
        )

    async def save_dashboard(self, r: web.Request) -> web.Response:
        body = await self._body(r)
        if problems := validate_dashboard_save(body):
            return self._bad(problems)
        folder_uid = body.get("folderUid")
        if folder_uid is not None and folder_uid not in self.folders:
            return web.json_response({"message": "folder not found"}, status=400)
        dash = body["dashboard"]
        old = self.dashboards.get(dash["uid"])
        if old is not None and not body.get("overwrite"):
            return web.json_response(
                {
                    "message": "A dashboard with the same uid already exists",
                    "status": "name-exists",
                },
                status=412,
            )
        version = old["version"] + 1 if old else 1
        self.dashboards[dash["uid"]] = {
            "dashboard": dash,
            "folderUid": folder_uid,
            "version": version,
        }
        return web.json_response(
            {
                "id": self._id(),
                "uid": dash["uid"],
                "status": "success",
                "url": f"/d/{dash['uid']}/x",
                "version": version,
            }
        )

    async def find_annotations(self, r: web.Request) -> web.Response:
        tags = r.query.getall("tags", [])
        start = int(r.query.get("from", 0))
        end = int(r.query.get("to", 2**62))
        limit = int(r.query.get("limit", 100))
        found = [
            a
            for a in self.annotations
            if set(tags) <= set(a["tags"])
            and a["time"] <= end
            and (a.get("timeEnd") or a["time"]) >= start
        ]
        found.sort(key=lambda a: -a["time"])
        return web.json_response(found[:limit])

    async def create_annotation(self, r: web.Request) -> web.Response:
        body = await self._body(r)
        if problems := validate_annotation(body):
            return self._bad(problems)
        annotation = {**body, "id": self._id()}
        self.annotations.append(annotation)
        return web.json_response({"message": "Annotation added", "id": annotation["id"]})

    def app(self) -> web.Application:
        def role(name: str, handler: Any) -> Any:
            async def wrapped(request: web.Request) -> web.StreamResponse:
                return await handler(request)

            wrapped.role = name  # type: ignore[attr-defined]
            return wrapped

        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/frontend/settings", role("Viewer", self.settings))
        app.router.add_get("/api/folders/{uid}", role("Viewer", self.get_folder))
        app.router.add_post("/api/folders", role("Editor", self.create_folder))
        app.router.add_put("/api/folders/{uid}", role("Editor", self.update_folder))
        app.router.add_get("/api/datasources/uid/{uid}", role("Viewer", self.get_datasource))
        app.router.add_post("/api/datasources", role("Admin", self.create_datasource))
        app.router.add_put("/api/datasources/uid/{uid}", role("Admin", self.update_datasource))
        app.router.add_post("/api/dashboards/db", role("Editor", self.save_dashboard))
        app.router.add_get("/api/annotations", role("Viewer", self.find_annotations))
        app.router.add_post("/api/annotations", role("Editor", self.create_annotation))
        return app


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    """A FakeGrafana served on a free loopback port in a background thread."""
    fake = FakeGrafana()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app(), access_log=None)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-grafana", daemon=True)
    thread.start()
    assert ready.wait(10), "fake Grafana did not start"
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
