"""The page's endpoints on a FastAPI app: who may see them, what they answer, what they refuse.

The app carries the page's routes as the transformer installs them (``install_ui``) and a real
monitor (not capturing: its windows come from a real ``UiStore``); the served transformer
itself is tested in tests/e2e/test_ui_browser.py.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from transformer.analysis.anomaly_groups import load_anomaly_groups
from transformer.analysis.events import EventChange
from transformer.analysis.labels import load_labels
from transformer.analysis.record_context import RecordContext
from transformer.monitor.loop import Monitor
from transformer.monitor.service import MonitorService
from transformer.monitor.sources import SourceSpec
from transformer.monitor.window_scores import WindowScores
from transformer.settings import TransformerSettings
from transformer.ui.auth import COOKIE, UiAccess
from transformer.ui.routes import STATIC, install_ui
from transformer.ui.store import UiStore

TOKEN = "a-token-of-some-length-26"


def page_app(tmp_path: Path, access: UiAccess) -> tuple[FastAPI, UiStore]:
    spec = SourceSpec(name="hall", url="pulse:hall")

    async def never(_: Any) -> Any:
        raise AssertionError("no audio in these tests")

    monitor = Monitor(
        [spec], embed=never, score=never, record=lambda *_: None,
        groups=load_anomaly_groups(), labels=load_labels(),
    )  # fmt: skip
    store = UiStore(tmp_path / "ui.sqlite3", 2)
    model = SimpleNamespace(
        name="audioguard",
        settings=TransformerSettings(mqtt_url=None),
        monitor=MonitorService([spec], monitor),
        ui_store=store,
        delivery=None,
    )
    app = FastAPI()
    install_ui(app)
    app.state.audio_transformer = model
    app.state.ui_access = access
    return app, store


@pytest.fixture
def guarded(tmp_path: Path) -> TestClient:
    app, _ = page_app(tmp_path, UiAccess(False, TOKEN, "ann", "correct horse"))
    return TestClient(app)


PATHS = ["/ui", "/ui/static/app.js", "/ui/api/config", "/ui/api/live", "/ui/api/events", "/ui/api/stream"]


@pytest.mark.parametrize("path", PATHS)
def test_off_loopback_every_path_needs_credentials(guarded: TestClient, path: str) -> None:
    refused = guarded.get(path)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="audioguard"'
    wrong = guarded.get(path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    if path != "/ui/api/stream":  # an endless body: the others only
        assert guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        basic = base64.b64encode(b"ann:correct horse").decode()
        assert guarded.get(path, headers={"Authorization": f"Basic {basic}"}).status_code == 200
        bad = base64.b64encode(b"ann:wrong horse").decode()
        assert guarded.get(path, headers={"Authorization": f"Basic {bad}"}).status_code == 401


def test_without_configured_credentials_the_401_names_the_settings(tmp_path: Path) -> None:
    app, _ = page_app(tmp_path, UiAccess(False))
    answer = TestClient(app).get("/ui/api/live")
    assert answer.status_code == 401
    assert "AUDIOGUARD_UI_TOKEN" in answer.json()["error"]
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_browser_types_the_token_once_and_gets_a_cookie_without_it(tmp_path: Path) -> None:
    app, _ = page_app(tmp_path, UiAccess(False, TOKEN))
    client = TestClient(app)
    form = client.get("/ui", headers={"Accept": "text/html"})
    assert form.status_code == 401 and 'action="/ui/login"' in form.text
    assert client.post("/ui/login", data={"token": "nope"}, follow_redirects=False).status_code == 401
    logged = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
    assert logged.status_code == 303 and logged.headers["location"] == "/ui"
    cookie = logged.cookies[COOKIE]
    assert TOKEN not in cookie and "httponly" in logged.headers["set-cookie"].lower()
    assert client.get("/ui/api/live").status_code == 200  # the cookie is enough


def test_on_loopback_the_page_is_open_and_serves_its_own_assets(tmp_path: Path) -> None:
    app, _ = page_app(tmp_path, UiAccess(True))
    client = TestClient(app)
    page = client.get("/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert asset.startswith("/ui/static/"), asset  # no CDN, nothing third-party
        assert client.get(asset).status_code == 200
    assert client.get("/ui/static/../routes.py").status_code == 404
    assert client.get("/ui/static/secret.txt").status_code == 404


def test_the_script_never_writes_data_as_html() -> None:
    script = "".join(path.read_text() for path in STATIC.glob("*.js"))
    assert "innerHTML" not in script and "outerHTML" not in script and "insertAdjacentHTML" not in script
    assert "document.write" not in script and "eval(" not in script


def change(kind: str, event_id: str, ended_at: str | None) -> EventChange:
    return EventChange(
        kind, event_id, "hall", "glass_break", "Glass breaking", 0.4, 3.0,
        None if ended_at is None else 5.0, 0.91, (), started_at="2026-12-07T03:00:00+00:00",
        ended_at=ended_at,
    )  # fmt: skip


def test_the_timeline_and_a_record(tmp_path: Path) -> None:
    app, store = page_app(tmp_path, UiAccess(True))
    context = RecordContext("live", "hall", "test", "dp_noise", {"epsilon": 2.0}, session="s1")
    store.add_events([change("start", "e1", None)], context)
    store.add_events([change("end", "e1", "2026-12-07T03:00:05+00:00")], context)
    client = TestClient(app)
    events = client.get("/ui/api/events", params={"hours": 24}).json()["events"]
    assert [(e["event_id"], e["change"]) for e in events] == [("e1", "end")]  # the end replaced the start
    record = client.get("/ui/api/events/e1").json()
    assert (record["privacy_method"], record["privacy_params"]) == ("dp_noise", {"epsilon": 2.0})
    assert record["schema_version"] and record["session"] == "s1"  # the outbox's record
    assert record["ended_at"] == "2026-12-07T03:00:05+00:00" and record["peak_score"] == 0.91
    assert record["delivery"] == []  # no sink configured
    assert client.get("/ui/api/events/nope").status_code == 404
    assert client.get("/ui/api/events", params={"hours": 48}).status_code == 400


def test_history_and_tune_name_bad_requests_and_answer_the_stored_scores(tmp_path: Path) -> None:
    app, store = page_app(tmp_path, UiAccess(True))
    now = time.time()
    scores = [0.125, 0.875, 0.875, 0.875, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125]  # float32-exact
    store.add_windows(
        [
            WindowScores(
                "hall", "s", 1, i * 0.96, 9.6 + i * 0.96, now - 60 + i, -20.0, {"glass_break": s}, {}
            )
            for i, s in enumerate(scores)
        ]
    )
    client = TestClient(app)
    history = client.get("/ui/api/history", params={"source": "hall", "group": "glass_break"}).json()
    assert [point[1] for point in history["points"]] == scores and history["threshold"] == 0.4
    tuned = client.get(
        "/ui/api/tune", params={"source": "hall", "group": "glass_break", "threshold": 0.5}
    ).json()
    assert tuned["events"] == 1 and tuned["windows"] == 10
    assert "glass_break: 0.5" in tuned["snippet"]
    assert (
        client.get(
            "/ui/api/tune", params={"source": "x", "group": "glass_break", "threshold": 0.5}
        ).status_code
        == 404
    )
    assert (
        client.get("/ui/api/tune", params={"source": "hall", "group": "nope", "threshold": 0.5}).status_code
        == 404
    )
    answer = client.get("/ui/api/tune", params={"source": "hall", "group": "glass_break", "threshold": 2})
    assert answer.status_code == 400 and "threshold" in answer.json()["error"]
    query = {"source": "hall", "group": "glass_break", "threshold": 0.5, "minutes": -1}
    answer = client.get("/ui/api/tune", params=query)
    assert answer.status_code == 400 and "minutes" in answer.json()["error"]


def test_the_store_keeps_numbers_only_and_forgets_after_its_retention(tmp_path: Path) -> None:
    store = UiStore(tmp_path / "ui.sqlite3", 1)
    old = WindowScores("hall", "s", 1, 0.0, 9.6, time.time() - 2 * 3600, -20.0, {"glass_break": 0.2}, {})
    new = WindowScores("hall", "s", 1, 0.96, 10.56, time.time(), -20.0, {"glass_break": 0.3}, {})
    store.add_windows([old, new])
    assert [w.at for w in store.windows("hall", 0.0)] == [new.at]  # the expired row went
    columns = {row[1] for row in store._db.execute("PRAGMA table_info(windows)")}
    assert columns == {"source", "session", "segment", "start_seconds", "end_seconds", "at"} | {
        "level_dbfs",
        "group_set",
        "scores",
    }  # numbers only: no column could hold audio beyond the float32 group scores
    assert store.windows("hall", 0.0)[0].scores == {"glass_break": pytest.approx(0.3, abs=1e-7)}
    with pytest.raises(ValueError, match="1-24 hours"):
        UiStore(tmp_path / "x.sqlite3", 48)


def test_a_refused_credential_setting_is_not_quoted_in_the_error() -> None:
    from pydantic import ValidationError

    for given in ({"ui_token": "sekrit-short"}, {"ui_username": "ann", "ui_password": "sekrit"}):
        with pytest.raises(ValidationError) as refused:
            TransformerSettings(**given)
        assert "at least" in str(refused.value) and "sekrit" not in str(refused.value)
    assert "sekrit" not in repr(TransformerSettings(ui_token="sekrit-and-long-enough"))
