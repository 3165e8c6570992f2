"""``/ui``: the web page and its data endpoints, on the transformer's own port.

Every asset is a file of ``transformer/ui/static`` (no CDN); every route checks ``UiAccess``
(``transformer.ui.auth``) first. Data endpoints: ``/ui/api/live`` (the live view once) and
``/ui/api/stream`` (the same as server-sent events), ``/ui/api/events`` and
``/ui/api/events/{id}`` (the timeline and a record), ``/ui/api/history`` (a source and group's
window scores) and ``/ui/api/tune`` (what a candidate threshold would have raised, through the
real lifecycle: ``transformer.ui.tune``). A recording is tried through the v2 infer route the
CLI uses (the page sends what ``audioguard client`` sends).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from transformer.privacy import PRIVACY_METHODS
from transformer.ui.auth import COOKIE, UiAccess
from transformer.ui.live import live_stream, snapshot
from transformer.ui.tune import groups_snippet, replay

STATIC: Final = Path(__file__).parent / "static"
SCRIPTS: Final = ("common", "live", "timeline", "tune", "try", "app")  # index.html loads them in order
ASSETS: Final = {f"{name}.js": "text/javascript" for name in SCRIPTS} | {"app.css": "text/css"}
HOUR: Final = 3600.0

router = APIRouter(prefix="/ui", include_in_schema=False)


class UiProblem(Exception):
    """A request the page's endpoints refuse (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _model(request: Request) -> Any:
    model = getattr(request.app.state, "audio_transformer", None)
    access: UiAccess | None = getattr(request.app.state, "ui_access", None)
    if model is None or access is None or not model.settings.ui_enabled:
        raise UiProblem(404, "the web page is off (ui_enabled false)")
    return model


def _checked(request: Request) -> tuple[Any, Response | None]:
    """The model, and the refusal to answer instead (401) when the request may not see the page."""
    model = _model(request)
    access: UiAccess = request.app.state.ui_access
    return model, None if access.allows(request) else access.refusal(request)


def _monitor(model: Any) -> Any:
    if model.monitor is None:
        raise UiProblem(404, "this transformer listens to no live source (start it with --sources_file)")
    return model.monitor


def _store(model: Any) -> Any:
    if model.ui_store is None:
        raise UiProblem(404, "no live sources: no timeline or score history")
    return model.ui_store


async def ui_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, UiProblem)
    return JSONResponse({"error": error.message}, status_code=error.status)


@router.get("")
async def page(request: Request) -> Response:
    _, refused = _checked(request)
    return refused or FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_STORE)


@router.get("/static/{name}")
async def asset(request: Request, name: str) -> Response:
    _, refused = _checked(request)
    if refused:
        return refused
    if name not in ASSETS:
        raise UiProblem(404, "no such asset")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=_NO_STORE)


@router.post("/login")
async def login(request: Request) -> Response:
    """The page's token form: a cookie holding its digest, then the page (401 for a wrong token)."""
    _model(request)
    access: UiAccess = request.app.state.ui_access
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[0]
    if access.token is None or not access.token_matches(token):
        return access.refusal(request)
    answer = RedirectResponse("/ui", status_code=303)
    answer.set_cookie(COOKIE, access.cookie_value(), httponly=True, samesite="strict", path="/ui")
    return answer


@router.get("/api/config")
async def config(request: Request) -> Response:
    model, refused = _checked(request)
    if refused:
        return refused
    monitor = model.monitor
    lifecycle = None
    if monitor is not None and monitor.sources:  # every source's tracker has the service's
        lifecycle = dataclasses.asdict(monitor.monitor.heard(monitor.sources[0].name).tracker.settings)
    return JSONResponse(
        {
            "model_name": model.name,
            "privacy_methods": list(PRIVACY_METHODS),
            "lifecycle": lifecycle,
            "mqtt_cooldown_seconds": model.settings.mqtt_cooldown_seconds,
            "retention_hours": model.settings.ui_retention_hours,
            "live": model.monitor is not None,
        }
    )


@router.get("/api/live")
async def live(request: Request) -> Response:
    model, refused = _checked(request)
    return refused or JSONResponse(snapshot(_monitor(model)))


@router.get("/api/stream")
async def stream(request: Request) -> Response:
    model, refused = _checked(request)
    if refused:
        return refused
    body = live_stream(_monitor(model), request.is_disconnected, asyncio.sleep)
    headers = {**_NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get("/api/events")
async def events(request: Request, hours: float = 24.0) -> Response:
    model, refused = _checked(request)
    if refused:
        return refused
    if not 0 < hours <= 24:
        raise UiProblem(400, "hours must be > 0 and <= 24")
    rows = await asyncio.to_thread(_store(model).events, time.time() - hours * HOUR)
    return JSONResponse({"events": rows})


@router.get("/api/events/{event_id}")
async def event(request: Request, event_id: str) -> Response:
    model, refused = _checked(request)
    if refused:
        return refused
    record = await asyncio.to_thread(_store(model).event, event_id)
    if record is None:
        raise UiProblem(404, "no such event in the page's store (older than its retention?)")
    record["delivery"] = await asyncio.to_thread(_delivery, model, event_id)
    return JSONResponse(record)


def _delivery(model: Any, event_id: str) -> list[dict[str, Any]]:
    """Each sink's state for the event, as the sink itself keeps it (``DeliveryService.event_delivery``)."""
    return [] if model.delivery is None else model.delivery.event_delivery(event_id)


@router.get("/api/history")
async def history(request: Request, source: str, group: str, minutes: float = 60.0) -> Response:
    model, refused = _checked(request)
    if refused:
        return refused
    threshold = _watched(model, source, group)
    if not 0 < minutes <= 60 * model.settings.ui_retention_hours:
        raise UiProblem(400, "minutes must be > 0 and within the retention")
    windows = await asyncio.to_thread(_store(model).windows, source, time.time() - minutes * 60)
    points = [[w.at, None if w.scores is None else w.scores.get(group)] for w in windows]
    return JSONResponse({"source": source, "group": group, "threshold": threshold, "points": points})


@router.get("/api/tune")
async def tune(
    request: Request, source: str, group: str, threshold: float, minutes: float = 60.0
) -> Response:
    model, refused = _checked(request)
    if refused:
        return refused
    _watched(model, source, group)
    if not 0 < threshold <= 1:
        raise UiProblem(400, "threshold must be > 0 and <= 1")
    if not 0 < minutes <= 60 * model.settings.ui_retention_hours:
        raise UiProblem(400, "minutes must be > 0 and within the retention")
    windows = await asyncio.to_thread(_store(model).windows, source, time.time() - minutes * 60)
    cooldown = model.settings.mqtt_cooldown_seconds if model.settings.mqtt_url else 0.0
    lifecycle = _monitor(model).monitor.heard(source).tracker.settings  # the source's own tracker's
    result = await asyncio.to_thread(replay, windows, group, threshold, lifecycle, cooldown)
    return JSONResponse(
        {**result.to_dict(), "windows": len(windows), "snippet": groups_snippet(group, threshold, source)}
    )


def _watched(model: Any, source: str, group: str) -> float:
    """The group's threshold on the source (404 naming the unknown source or group)."""
    monitor = _monitor(model)
    names = [spec.name for spec in monitor.sources]
    if source not in names:
        raise UiProblem(404, "no such live source")
    groups = {g.name: g.threshold for g in monitor.monitor.heard(source).detector.groups}
    if group not in groups:
        raise UiProblem(404, "the source watches no such group")
    return float(groups[group])


_NO_STORE: Final = {"Cache-Control": "no-store"}


def install_ui(target: FastAPI) -> None:
    """The page's routes on ``target`` (guarded by the ``UiAccess`` ``bind_model`` puts on its state)."""
    target.include_router(router)
    target.add_exception_handler(UiProblem, ui_problem)
