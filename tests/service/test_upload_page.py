"""The upload page (/ui) in a real headless browser: Debian's chromium driven by selenium
through Debian's chromedriver, against the real gunicorn with an API key. Nothing is fetched at
run time: the driver and browser paths are given, so Selenium Manager is never asked."""

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from bench.server import running_server
from service.app import create_app
from tests.helpers import draw_mixture, make_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
API_KEY = "page-test-key"
KEPT_MODES = [0, 3, 5]  # 3 of ring8's 8 modes
WAIT_SECONDS = 20
# Chromium's background services (updates, sync, field trials, QUIC probes) would call the
# internet, which a closed test machine refuses; a fresh profile keeps runs independent.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1280,1600",
)


@pytest.fixture(scope="module")
def keyed_server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """The url of a 2-worker gunicorn over the tiny repository with API_KEY set."""
    folder = tmp_path_factory.mktemp("gunicorn-ui")
    with running_server(
        model_repo,
        folder / "log.txt",
        WEB_CONCURRENCY="2",
        DATA_DIR=str(folder / "data"),
        API_KEY=API_KEY,
    ) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """A headless Chromium; fails (never skips) without Debian's chromium and chromedriver, so
    that `make test` cannot pass without running the page."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"the browser tests need {', '.join(missing)}: run `make system-test-deps` (part of "
            "`make install-test`), which installs Debian's chromium and chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    with pytest.MonkeyPatch.context() as patch:
        # Selenium Manager would download a driver or a browser; asking it is a test failure.
        patch.setattr(SeleniumManager, "binary_paths", refuse_selenium_manager)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def refuse_selenium_manager(*args: object) -> dict:
    raise AssertionError("Selenium Manager was called: it would fetch a driver from the internet")


def open_page(browser, url: str, key: str):
    """The page loaded with `key` typed into the key box and applied (lists loaded again)."""
    browser.get_log("browser")  # drop the console messages of earlier tests
    browser.get(f"{url}/ui")
    box = browser.find_element(By.ID, "api-key")
    box.clear()
    box.send_keys(key)
    browser.find_element(By.ID, "key-apply").click()
    return browser


def wait_for(browser, condition, what: str):
    """Wait for `condition(browser)`; on timeout, fail with the page's error box and progress."""
    try:
        return WebDriverWait(browser, WAIT_SECONDS).until(condition)
    except TimeoutException:
        error = browser.find_element(By.ID, "error").text
        progress = browser.find_element(By.ID, "progress").text
        pytest.fail(f"waited {WAIT_SECONDS} s for {what}; error box: {error!r}; {progress!r}")


def drop_file(browser, path: Path) -> None:
    """Drop `path` onto the page's drop zone, as a file dragged from the desktop would be."""
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], arguments[1]));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        """,
        base64.b64encode(path.read_bytes()).decode(),
        path.name,
    )


def option_values(browser, select_id: str) -> list[str]:
    options = browser.find_elements(By.CSS_SELECTOR, f"#{select_id} option")
    return [option.get_attribute("value") for option in options]


def diagnose_on_page(browser, button: str) -> dict[str, str]:
    """Press `button`; the verdict and key numbers once the report and its figure are shown."""
    browser.find_element(By.ID, button).click()
    wait_for(browser, lambda b: b.find_element(By.ID, "verdict").text, "the verdict")
    wait_for(
        browser,
        lambda b: b.execute_script(
            "const img = document.getElementById('figure');"
            "return img.complete && img.naturalWidth > 0;"
        ),
        "the figure to load",
    )
    ids = ("verdict", "covered", "missing", "kl", "high-quality", "coverage", "n-samples")
    result = {name: browser.find_element(By.ID, name).text for name in ids}
    result["reasons"] = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#reasons li")]
    result["figure_width"] = browser.execute_script(
        "return document.getElementById('figure').naturalWidth"
    )
    # Nothing failed to load or broke the page's Content-Security-Policy (both log SEVERE),
    # but for the lists' 401 before the key was typed in.
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert [m for m in severe if not re.search(r"/v1/(models|references)\S* .* 401", m)] == []
    return result


def npy_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, samples)
    return buffer.getvalue()


def test_the_page_and_its_files_are_open_and_self_contained(model_repo):
    """Served without the key (the page's API calls carry it), nothing from elsewhere and no
    inline script, under a Content-Security-Policy that allows only this origin and blob:
    images (the figure)."""
    client = create_app(make_config(model_repo, api_key="k")).test_client()
    page = client.get("/ui")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "img-src 'self' blob:" in policy
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # every script is a file
    assets = re.findall(r'(?:src|href)="(ui/[^"]+)"', html)
    assert sorted(assets) == ["ui/upload.css", "ui/upload.js"]
    for asset in assets:
        with client.get(f"/{asset}") as response:
            assert response.status_code == 200 and response.get_data(), asset
    assert client.get("/ui/app.py").status_code == 404
    assert client.get("/ui/sub/upload.js").status_code == 401  # one level only is open
    assert client.get("/v1/models").status_code == 401


def test_uploaded_three_of_eight_modes_show_the_verdict_and_the_missing_modes(
    keyed_server, browser, ring8_reference, tmp_path
):
    samples = draw_mixture(ring8_reference, 2500, modes=KEPT_MODES, seed=3)
    batch = tmp_path / "three-modes.npy"
    batch.write_bytes(npy_bytes(samples))
    expected = requests.post(
        f"{keyed_server}/v1/diagnostics",
        files={"file": ("three-modes.npy", batch.read_bytes())},
        data={"reference": "ring8"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    ).json()

    page = open_page(browser, keyed_server, API_KEY)
    wait_for(page, lambda b: "ring8" in option_values(b, "reference"), "the reference list")
    Select(page.find_element(By.ID, "reference")).select_by_value("ring8")
    page.find_element(By.ID, "file").send_keys(str(batch))
    shown = diagnose_on_page(page, "diagnose")

    left_out = sorted(set(range(8)) - set(KEPT_MODES))
    assert shown["verdict"] == expected["verdict"]["status"] == "collapsed"
    assert shown["reasons"] == expected["verdict"]["reasons"]
    assert [int(mode) for mode in shown["missing"].split(", ")] == left_out
    assert shown["covered"] == "3 of 8" and shown["n-samples"] == "2500"
    assert shown["figure_width"] > 0
    # The key survives a reload of the page (sessionStorage), and the lists load with it.
    page.refresh()
    assert page.find_element(By.ID, "api-key").get_attribute("value") == API_KEY
    wait_for(page, lambda b: "ring8-gan" in option_values(b, "model"), "the model list")


def test_generate_and_diagnose_shows_the_models_report(keyed_server, browser):
    body = {"n": 400, "seed": 11}
    expected = requests.post(
        f"{keyed_server}/v1/models/ring8-gan/diagnose",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    ).json()

    page = open_page(browser, keyed_server, API_KEY)
    wait_for(page, lambda b: "ring8-gan" in option_values(b, "model"), "the model list")
    Select(page.find_element(By.ID, "model")).select_by_value("ring8-gan")
    for field, value in body.items():
        page.find_element(By.ID, field).clear()
        page.find_element(By.ID, field).send_keys(str(value))
    shown = diagnose_on_page(page, "generate")

    assert shown["verdict"] == expected["verdict"]["status"]
    assert shown["reasons"] == expected["verdict"]["reasons"]
    modes = expected["modes"]
    assert shown["covered"] == f"{modes['covered']} of {modes['total']}"
    assert shown["missing"] == (", ".join(map(str, modes["missing"])) or "none")
    assert shown["n-samples"] == "400" and shown["figure_width"] > 0


def test_a_wrong_key_shows_the_services_401(keyed_server, browser, ring8_reference, tmp_path):
    page = open_page(browser, keyed_server, "not-the-key")
    error = wait_for(page, lambda b: b.find_element(By.ID, "error").text, "the error box")
    assert error.startswith("401") and "missing or wrong API key" in error
    assert option_values(page, "model") == []  # nothing listed without the key

    # With the right key the lists load and the error goes; then a wrong key in the box makes
    # the upload of a dropped file a 401, shown in place of a verdict.
    open_page(page, keyed_server, API_KEY)
    wait_for(page, lambda b: "ring8" in option_values(b, "reference"), "the reference list")
    assert not page.find_element(By.ID, "error").is_displayed()
    batch = tmp_path / "batch.npy"
    batch.write_bytes(npy_bytes(draw_mixture(ring8_reference, 100, modes=None)))
    drop_file(page, batch)
    assert page.execute_script("return document.getElementById('file').files[0].name") == (
        "batch.npy"
    )
    page.find_element(By.ID, "api-key").send_keys("-wrong")
    page.find_element(By.ID, "diagnose").click()
    error = wait_for(page, lambda b: b.find_element(By.ID, "error").text, "the error box")
    assert error.startswith("401") and "Bearer <key>" in error
    assert page.find_element(By.ID, "verdict").text == ""
    assert not page.find_element(By.ID, "result").is_displayed()
