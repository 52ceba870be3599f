"""The demo page and the prompt widget in a real browser: headless Chromium, driven by Playwright.

1. The demo page over a local HTTP server, built from the stand-in pipeline and from the active profile's models
   as `make demo` builds it (tiny in CI: the reference weights): no console errors, every player loads its FLAC
   file with the file's duration, every spectrogram decodes.
2. samod.widget.PromptWidget in JupyterLab (a local server with a random token, on a notebook that shows the
   widget over the stand-in): Generate shows a player and a spectrogram; an empty prompt shows the error.

Nothing is downloaded: the system's Chromium is used.

Needs `apt-get install chromium chromium-driver` (Debian, as root; .ci/run does it) and `pip install playwright`
(requirements-dev.txt); without them the tests are skipped and say so."""
import functools
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from demo_stand_in import build_stand_in_page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000 if os.environ.get("SAMOD_SCREENSHOTS") else 20_000  # every wait is bounded


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright: "
                                   "pip install -r requirements-dev.txt (never `playwright install`)")
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium chromium-driver")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=ARGS)
        yield context
        context.close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path):
    """http.server over `folder` on a free localhost port, in a thread: (server, base URL); stop with stop(server)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free one
    server.thread = threading.Thread(target=server.serve_forever, daemon=True)
    server.thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop(server) -> None:
    server.shutdown()
    server.server_close()
    server.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served_page(tmp_path_factory):
    """The stand-in's page, served; stopped afterwards."""
    index = build_stand_in_page(tmp_path_factory.mktemp("demo"))
    server, base = serve(index.parent)
    yield index, f"{base}/index.html"
    stop(server)


@pytest.fixture(scope="module")
def served_profile_page(tmp_path_factory):
    """The active profile's page as `make demo` builds it (python -m samod.demo_page: the profile's models, the
    reference weights at tiny, and held-out corpus songs), served; skipped without the corpus or the models."""
    from samod.demo_page import main, weights_rows
    from samod.profiles import REPO_ROOT, get_profile
    profile = get_profile()
    if not (profile.corpus_dir / "metadata.jsonl").is_file():
        pytest.skip(f"no corpus at {profile.corpus_dir}: `make corpus` renders it (`make test` does first)")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAMOD_WEIGHTS", "reference")  # as make demo (the unit tests' conftest chooses "own")
        missing = [row["file"] for row in weights_rows(profile) if not (REPO_ROOT / row["file"]).is_file()]
        if missing:
            pytest.skip(f"the {profile.name} profile has no trained models ({', '.join(missing)}): train them first")
        index = main(["--out", str(tmp_path_factory.mktemp("profile_demo"))])
    assert "reference" in index.read_text()  # the header names the weights it used
    server, base = serve(index.parent)
    yield index, f"{base}/index.html"
    stop(server)


def metadata_read(request) -> bool:
    """A player's request that Chromium aborted itself: with preload="metadata" it stops downloading a longer file
    once it has read the header (whether the player then knows its duration is checked below)."""
    return request.resource_type == "media" and request.failure == "net::ERR_ABORTED"


def check_page(browser, index: Path, url: str) -> tuple[int, int]:
    """Open the page in Chromium: no console errors or failed requests, every player loads its file and reports
    the file's duration (within 1 %), every spectrogram decodes. Returns (players, images) counted."""
    page = browser.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: None if metadata_read(request) else
            errors.append(f"failed: {request.url} {request.failure}"))
    page.goto(url, wait_until="load", timeout=WAIT_MS)

    # 1. every player has loaded its metadata (readyState >= 1) and knows its duration
    page.wait_for_function("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)",
                           timeout=WAIT_MS)
    players = page.eval_on_selector_all("audio", "all => all.map(a => ({src: a.getAttribute('src'), "
                                                 "duration: a.duration, error: a.error && a.error.code}))")
    for player in players:
        assert player["error"] is None, player
        expected = sf.info(str(index.parent / player["src"])).duration
        assert player["duration"] == pytest.approx(expected, rel=0.01), player

    # 2. every spectrogram decoded
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=WAIT_MS)
    images = page.eval_on_selector_all("img", "all => all.map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert all(width > 0 for _, width in images), images

    # 3. nothing went wrong on the way
    assert errors == []
    page.close()
    return len(players), len(images)


def test_page_loads_in_chromium(browser, served_page):
    assert check_page(browser, *served_page) == (10, 10)


def test_the_profile_page_loads_in_chromium(browser, served_profile_page):
    """The page of the active profile's models (tiny in CI: the reference weights), every section in it."""
    index, url = served_profile_page
    text = index.read_text()
    for section in ("Text to music", "Variable length", "Audio to audio", "Autoencoder reconstructions",
                    "Memorization candidates"):
        assert f"<h2>{section}</h2>" in text, section
    players, images = check_page(browser, index, url)
    assert players == images == text.count("<audio ") >= 15


# --- the prompt widget in JupyterLab ------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent
SCREENSHOTS = "SAMOD_SCREENSHOTS"  # a folder: save screenshots of the widget and of the profile's demo page there
# the stand-in by default (fast); with SAMOD_SCREENSHOTS, the active profile's trained models (load_pipeline)
WIDGET_PIPELINE = ("load_pipeline()", "from samod.generation import load_pipeline") if os.environ.get(SCREENSHOTS) \
    else ("SinePipeline()", "from demo_stand_in import SinePipeline")
WIDGET_SECONDS = 10.0 if os.environ.get(SCREENSHOTS) else 1.0
WIDGET_CELL = f"""{WIDGET_PIPELINE[1]}
from samod.widget import PromptWidget
widget = PromptWidget({WIDGET_PIPELINE[0]}, prompt="Genre: Jazz|Instruments: Piano", seconds={WIDGET_SECONDS}, steps=10)
widget.show();"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path):
    """JupyterLab on a free port with a random token, serving a notebook that shows the widget; stopped afterwards."""
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": "widget", "metadata": {},
                           "outputs": [], "source": WIDGET_CELL}],
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "widget.ipynb").write_text(json.dumps(notebook))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    if os.environ.get(SCREENSHOTS):  # the profile's default models (the unit tests' conftest asks for their own)
        env.pop("SAMOD_WEIGHTS", None)
    log = (tmp_path / "jupyter.log").open("w")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
               "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",  # nothing fetched from PyPI or the web
               *(["--allow-root"] if os.geteuid() == 0 else [])]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:  # bounded wait for the server to answer
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyter.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/widget.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def test_prompt_widget_in_jupyterlab(browser, jupyter_lab):
    page = browser.new_page()
    page.goto(jupyter_lab, wait_until="load", timeout=60_000)
    # 1. run the cell once the kernel is idle: the form appears
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)  # the kernel is connected
    page.click(".jp-Notebook .jp-Cell .cm-content")
    page.keyboard.press("Shift+Enter")
    generate = page.locator(".jp-OutputArea button", has_text="Generate")
    generate.wait_for(timeout=60_000)

    # 2. Generate: a player with its audio and a decoded spectrogram in the widget's output
    generate.click()
    page.wait_for_function("() => { const a = document.querySelector('.jp-OutputArea audio');"
                           " return a && a.readyState >= 1; }", timeout=WAIT_MS)
    duration = page.eval_on_selector(".jp-OutputArea audio", "a => a.duration")
    assert duration == pytest.approx(WIDGET_SECONDS, rel=0.01)
    page.wait_for_function("() => [...document.querySelectorAll('.jp-OutputArea img')]"
                           ".some(i => i.complete && i.naturalWidth > 0)", timeout=WAIT_MS)
    page.locator(".jp-OutputArea", has_text=f"{WIDGET_SECONDS} s of audio").first.wait_for(timeout=WAIT_MS)

    if os.environ.get(SCREENSHOTS):  # the committed figure: figures/widget_jupyterlab.png
        page.screenshot(path=str(Path(os.environ[SCREENSHOTS]) / "widget_jupyterlab.png"))

    # 3. an empty prompt: the error is shown in the form
    page.fill(".jp-OutputArea .widget-textarea textarea", "")
    generate.click()
    page.locator(".jp-OutputArea", has_text="error: the prompt is empty").first.wait_for(timeout=WAIT_MS)
    page.close()


def test_screenshot_of_the_demo_page(browser):
    """With SAMOD_SCREENSHOTS: the active profile's demo page (make demo builds it) as figures/demo_page.png."""
    if not os.environ.get(SCREENSHOTS):
        pytest.skip(f"set {SCREENSHOTS}=DIR to save screenshots of the demo page and the widget")
    from samod.profiles import get_profile
    index = get_profile().root / "demo" / "index.html"
    if not index.exists():
        pytest.skip(f"no demo page at {index}: run `python -m samod.demo_page` (make demo) first")
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 1400})
    page.goto(index.as_uri(), wait_until="load", timeout=60_000)
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)", timeout=WAIT_MS)
    page.screenshot(path=str(Path(os.environ[SCREENSHOTS]) / "demo_page.png"))
    page.close()
