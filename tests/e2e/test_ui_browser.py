"""The web page /ui in a real headless Chromium, against real predictor and transformer processes
listening to a live HTTP audio stream on loopback (``tests.support.live_wav``).

The stream is quiet (below the loudness gate) until the test makes a burst: the page must show
the source online and its level move, the burst's event on the page and in the timeline within
3 s of its start record, the threshold control's count equal to the events the service raised,
an uploaded file's anomalies the very lines ``audioguard client`` prints, and a server bound
beyond loopback must answer 401 to a request without the token. With
``AUDIOGUARD_UI_SCREENSHOTS=DIR`` the page's views are saved there (docs/ holds the README's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e.test_anomaly_delivery import transformer_args
from tests.support.browser import headless_chromium
from tests.support.cli import run_audioguard
from tests.support.dht_broker import DhtBroker
from tests.support.live_wav import LiveWavStream
from tests.support.serverutil import RunningServer, start_server
from tests.support.service_clients import MODEL, wav_bytes

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ffmpeg_installed")]

GROUP = "glass_break"
SCREENSHOTS = os.environ.get("AUDIOGUARD_UI_SCREENSHOTS")


@pytest.fixture(scope="module")
def stream() -> Iterator[LiveWavStream]:
    live = LiveWavStream()
    yield live
    live.close()


@pytest.fixture(scope="module")
def served(
    predictor: RunningServer, synthetic_model_dir: Path, stream: LiveWavStream, tmp_path_factory: Any
) -> Iterator[RunningServer]:
    work = tmp_path_factory.mktemp("ui")
    (work / "sources.yaml").write_text(f"sources:\n  - {{name: hall, url: '{stream.url}'}}\n")
    broker = DhtBroker(work / "dht").start()  # the real SIFIS DHT broker: a sink to deliver to
    server = start_server(
        "transformer",
        [
            *transformer_args(synthetic_model_dir, predictor),
            "--bind_host", "127.0.0.1",
            "--sources_file", str(work / "sources.yaml"),
            "--loudness_gate_dbfs", "-40",
            "--event_max_not_heard_seconds", "1.5",
            "--outbox_path", str(work / "outbox.sqlite3"),
            "--ui_store_path", str(work / "ui.sqlite3"),
            "--baselines_path", str(work / "baselines.json"),
            "--dht_url", broker.url,
        ],
    )  # fmt: skip
    yield server
    server.stop()
    broker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as driver:
        yield driver


def until(driver: Any, condition: Any, timeout: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def text_of(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0].text if found else ""


def shot(driver: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SCREENSHOTS) / name))


def level(driver: Any) -> float | None:
    text = text_of(driver, '.card[data-source="hall"] .level')
    return float(text.split()[0]) if text.endswith("dBFS") else None


def glass_starts(served: RunningServer) -> list[dict[str, Any]]:
    events = requests.get(f"{served.http_url}/ui/api/events", timeout=10).json()["events"]
    return [event for event in events if event["group"] == GROUP and event["source"] == "hall"]


def test_the_page_follows_the_live_source_and_its_burst(
    served: RunningServer, stream: LiveWavStream, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{served.http_url}/ui")
    until(browser, lambda d: text_of(d, '.card[data-source="hall"] .state') == "online")
    until(browser, lambda d: level(d) is not None)
    quiet = level(browser)
    assert quiet is not None and quiet < -50  # the quiet stream, in dBFS
    # the first window is due after 9.6 s of audio: wait for its scores (gated: none yet)
    group_row = f'.card[data-source="hall"] [data-group="{GROUP}"]'
    until(browser, lambda d: "threshold 0.40" in text_of(d, group_row))
    stream.burst(3.0)
    until(browser, lambda d: (level(d) or -120) > -20, timeout=10)  # the level moved with the burst
    until(browser, lambda d: GROUP in text_of(d, '.card[data-source="hall"] .open'), timeout=20)
    shown = time.time()
    starts = glass_starts(served)
    assert len(starts) == 1
    assert shown - starts[0]["recorded_at"] <= 3.0  # on the page within 3 s of its start record
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="timeline"]').click()
    row = f'#events tr[data-event-id="{starts[0]["event_id"]}"]'
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=3)
    assert time.time() - starts[0]["recorded_at"] <= 3.0  # and in the timeline
    Select(browser.find_element(By.ID, "timeline-group")).select_by_value(GROUP)
    cells = browser.find_elements(By.CSS_SELECTOR, "#events tbody td:nth-child(4)")
    groups = [cell.text for cell in cells]
    assert groups == [GROUP]  # the timeline per group
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="sources"]').click()
    score = text_of(browser, f"{group_row} .score")
    assert score.endswith("/ threshold 0.40") and float(score.split()[0]) >= 0.4
    shot(browser, "ui-sources.png")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="timeline"]').click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=5)
    browser.find_element(By.CSS_SELECTOR, row).click()
    until(browser, lambda d: "privacy applied" in text_of(d, "#record-fields"), timeout=5)
    record = text_of(browser, "#record-fields")
    assert "Glass breaking [glass_break]" in record and "threshold 0.40" in record
    assert "privacy applied\nnone" in record
    assert "delivery\ndht: delivered" in record or "delivery\ndht: pending" in record
    shot(browser, "ui-timeline.png")


def test_the_threshold_control_counts_what_the_service_raised(served: RunningServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # every event of the burst has ended (the count is of events started; an open one counts too)
    until(browser, lambda d: glass_starts(served) and glass_starts(served)[0]["change"] == "end", timeout=40)
    raised = len(glass_starts(served))
    browser.get(f"{served.http_url}/ui")
    until(browser, lambda d: text_of(d, '.card[data-source="hall"] .state') == "online")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="tune"]').click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#tune-source option[value="hall"]'))
    Select(browser.find_element(By.ID, "tune-source")).select_by_value("hall")
    Select(browser.find_element(By.ID, "tune-group")).select_by_value(GROUP)
    threshold = browser.find_element(By.ID, "tune-threshold")
    threshold.clear()
    threshold.send_keys("0.4")  # the service's threshold for the group
    browser.find_element(By.CSS_SELECTOR, "#tune-form button").click()
    until(browser, lambda d: d.find_element(By.ID, "tune-result").get_attribute("data-events"), timeout=10)
    assert int(browser.find_element(By.ID, "tune-result").get_attribute("data-events")) == raised
    assert "glass_break: 0.4" in text_of(browser, "#tune-snippet")
    threshold.clear()
    threshold.send_keys("0.95")  # a candidate above every score: the line moves, nothing is raised
    browser.find_element(By.CSS_SELECTOR, "#tune-form button").click()
    until(browser, lambda d: "threshold 0.95: 0 event" in text_of(d, "#tune-result"), timeout=10)
    shot(browser, "ui-tune.png")


def test_an_upload_shows_the_anomalies_the_cli_prints(
    served: RunningServer, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    rng = np.random.default_rng(5)
    samples = np.concatenate([0.001 * rng.standard_normal(16_000 * 4), 0.4 * rng.standard_normal(16_000 * 8)])
    path = tmp_path / "knock.wav"
    path.write_bytes(wav_bytes(samples.clip(-1, 1)))
    cli = run_audioguard(
        "client", "--url", served.http_url, "--model-name", MODEL, "--privacy", "none", str(path)
    )
    assert cli.returncode == 0, cli.stderr
    expected = [line.strip() for line in cli.stdout.splitlines() if "(threshold " in line]
    assert expected  # the synthetic model fires on loud noise
    browser.get(f"{served.http_url}/ui")
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="try"]').click()
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#try-privacy option[value="none"]'))
    browser.find_element(By.ID, "try-file").send_keys(str(path))
    Select(browser.find_element(By.ID, "try-privacy")).select_by_value("none")
    browser.find_element(By.CSS_SELECTOR, "#try-form button").click()
    until(browser, lambda d: "(threshold " in text_of(d, "#try-anomalies"), timeout=60)
    shown = [
        line.strip() for line in text_of(browser, "#try-anomalies").splitlines() if "(threshold " in line
    ]
    assert shown == expected
    assert "privacy none" in text_of(browser, "#try-status")
    shot(browser, "ui-try.png")


def test_bound_beyond_loopback_the_page_needs_the_token(
    predictor: RunningServer, synthetic_model_dir: Path, stream: LiveWavStream, tmp_path: Path
) -> None:
    (tmp_path / "sources.yaml").write_text(f"sources:\n  - {{name: hall, url: '{stream.url}'}}\n")
    token = "t0ken-for-the-page-test"
    server = start_server(
        "transformer",
        [
            *transformer_args(synthetic_model_dir, predictor),
            "--bind_host", "0.0.0.0",
            "--sources_file", str(tmp_path / "sources.yaml"),
            "--outbox_path", str(tmp_path / "outbox.sqlite3"),
            "--ui_store_path", str(tmp_path / "ui.sqlite3"),
            "--baselines_path", str(tmp_path / "baselines.json"),
        ],
        env={"AUDIOGUARD_UI_TOKEN": token},
    )  # fmt: skip
    try:
        for path in ("/ui", "/ui/api/live", "/ui/api/events", "/ui/api/stream"):
            refused = requests.get(f"{server.http_url}{path}", timeout=10)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"] == 'Bearer realm="audioguard"'
        allowed = requests.get(
            f"{server.http_url}/ui/api/live", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert allowed.status_code == 200 and allowed.json()["sources"][0]["name"] == "hall"
    finally:
        server.stop()
    assert token not in server.logs.read_text()  # never logged
