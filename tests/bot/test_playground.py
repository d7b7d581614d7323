"""`mimi playground` in a real browser: headless Chromium (Debian's chromium + chromium-driver,
through Selenium) teaches two artists, retrains, guesses a third song and reads /stats on the
page, which runs the real bot against the built-in Discord-compatible server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.playground import loopback
from tests.audio_factory import encode

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - the dev extra installs it
    webdriver = None

needs_browser = pytest.mark.skipif(
    webdriver is None or not CHROMIUM or not DRIVER,
    reason="no headless browser: `scripts/setup.sh browser` installs Debian's chromium and "
    "chromium-driver (as root), and the dev extra installs selenium",
)
URL_LINE = re.compile(r"mimi playground: open (http://\S+)")


def test_only_loopback_counts_as_local() -> None:
    """The warning about listening beyond this machine is given for every non-loopback host."""
    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert not loopback("0.0.0.0") and not loopback("192.168.1.4") and not loopback("example")


@contextlib.contextmanager
def running(tmp_path: Path, weights: Path, *args: str) -> Iterator[tuple[str, Path, list[str]]]:
    """`mimi ARGS` (the playground) in its own process, run from `tmp_path` with no token:
    its URL, its data dir and what it printed; stopped with SIGTERM (it must exit 0)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "MIMI_FRONTEND_WEIGHTS": str(weights),
        "MIMI_TEACH_COOLDOWN_S": "0",
        "MIMI_GUESS_COOLDOWN_S": "0",
        "MIMI_TRAIN_QUIET_S": "600",  # the browser test retrains with /retrain
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    started, url, seen = time.monotonic(), None, []
    assert proc.stdout is not None
    while url is None and time.monotonic() - started < 120:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if match := URL_LINE.search(line):
            url = match[1]
    assert url, "".join(seen)
    assert time.monotonic() - started < 60  # the URL within a minute
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True)
    reader.start()  # keep reading its log, or a full pipe would stall it
    try:
        yield url, tmp_path / "playground-data", seen
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, "".join(seen[-40:])


@pytest.fixture
def playground(tmp_path: Path, frontend_weights: Path) -> Iterator[tuple[str, Path]]:
    """`mimi playground --port 0`: its URL and data dir."""
    with running(tmp_path, frontend_weights, "playground", "--port", "0") as (url, data, _):
        yield url, data


def test_make_run_without_a_token_opens_the_playground(tmp_path, frontend_weights) -> None:
    """`mimi run --playground` (what `make run` runs) without DISCORD_TOKEN says so in one line
    with the URL and how to run on Discord, serves the page and the API on loopback, and keeps
    its data in ./playground-data."""
    with running(tmp_path, frontend_weights, "run", "--playground") as (url, data, seen):
        said = next(line for line in seen if "mimi playground: open" in line)
        assert "DISCORD_TOKEN is not set" in said and "put the token in .env" in said
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/world", timeout=10) as answer:
            world = json.load(answer)
        names = {c["name"] for c in world["commands"]}
        assert {"teach", "guess", "stats", "Who's this artist?"} <= names
        assert [s["name"] for s in world["servers"]] == ["Game music club", "ゲーム音楽部"]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b"<title>mimi playground</title>" in page.read()
        assert (data / "mimi.sqlite3").is_file()


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium, 1280×1000."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                "--disable-dev-shm-usage", "--lang=en-US"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER),
                              options=options)  # fmt: skip
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(driver, predicate, timeout: float = 120.0):
    """Poll `predicate(driver)` until it is truthy; its value (else fail showing the channel)."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(predicate)
    except TimeoutException:
        status = driver.find_element(By.ID, "status").text
        raise AssertionError(f"status {status!r}; channel: {_texts(driver)}") from None


def _run(driver, command: str, **fields: str | Path) -> None:
    """Pick `command` in the composer, fill its options (paths go to file inputs), send."""
    Select(driver.find_element(By.ID, "command")).select_by_value(command)
    for name, value in fields.items():
        field = driver.find_element(By.CSS_SELECTOR, f"#options input[name='{name}']")
        field.send_keys(str(value))
    driver.find_element(By.ID, "send").click()


def _texts(driver) -> list[str]:
    """The text of every message in the channel (read at once: the page re-renders)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#messages .message')].map((m) => m.innerText)"
    )


def _find(driver, text: str) -> str | None:
    """The first message containing `text`, if any."""
    return next((t for t in _texts(driver) if text in t), None)


def _count(driver, text: str) -> int:
    """How many times `text` appears in the channel."""
    return "\n".join(_texts(driver)).count(text)


@needs_browser
def test_teach_retrain_guess_stats_in_the_browser(playground, browser, tmp_path: Path) -> None:
    """Teach two artists, retrain, guess a third song: the page shows the replies (who used
    which command), the training announcement updated in place, the guess with its spectrogram
    picture and working buttons, /stats, a message's Apps menu with the modal it opens, a private
    /help only its member sees, and the Japanese command names."""
    url, data = playground
    songs = {
        (artist, i): encode(tmp_path / f"{artist}{i}.mp3", "mp3", seconds=21, voice=voice, seed=i)
        for artist, voice in (("Drone", 0), ("Chime", 4))
        for i in range(2)
    }
    clip = encode(tmp_path / "unknown-clip.ogg", "ogg", seconds=14, voice=4, seed=9)
    browser.get(url)
    _wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#command option[value=teach]"))
    for artist in ("Drone", "Chime"):
        _run(browser, "teach", artist=artist, song=songs[artist, 0], song2=songs[artist, 1])
        _wait_for(browser, lambda d, a=artist: _count(d, f"Learned {a} from") == 2)
    assert "Aiko used /teach" in _texts(browser)[0]

    _run(browser, "retrain")
    ready = _wait_for(browser, lambda d: _find(d, "Model v1 ready"), timeout=240)
    assert "song accuracy" in ready

    _run(browser, "guess", clip=clip)
    width = (
        "const i = document.querySelector(\"img[data-file='guess.png']\");"
        " return i && i.naturalWidth"
    )
    assert _wait_for(browser, lambda d: d.execute_script(width)) == 1200  # the picture loaded
    guess = _texts(browser)[-1]
    assert "Aiko used /guess" in guess and "Chime" in guess and "model v1" in guess
    assert "✅ Right" in guess and "✏️ It was…" in guess

    _run(browser, "stats")
    stats = _wait_for(
        browser, lambda d: next((t for t in _texts(d) if "What I know here" in t), None)
    )
    assert "Drone" in stats and "Chime" in stats
    browser.execute_script(  # the guess at the top of the view, for the README's picture
        "const all = [...document.querySelectorAll('#messages .message')];"
        "all.filter((m) => m.innerText.includes('used /guess')).pop().scrollIntoView();"
    )
    screenshot = os.environ.get("MIMI_PLAYGROUND_SCREENSHOT")
    browser.save_screenshot(screenshot or str(tmp_path / "playground.png"))

    right = "//li[contains(., 'used /guess')]//button[contains(., 'Right')]"
    browser.find_elements(By.XPATH, right)[-1].click()  # a component, pressed in the page
    assert "Chime" in _wait_for(browser, lambda d: _find(d, "Right: Chime — thanks!"))

    Select(browser.find_element(By.ID, "command")).select_by_index(0)  # write a message
    browser.find_element(By.CSS_SELECTOR, "#options input[name='content']").send_keys("listen")
    browser.find_element(By.CSS_SELECTOR, "#options input[name='mention']").click()  # no @mimi
    third = encode(tmp_path / "Pulse.mp3", "mp3", seconds=21, voice=8, seed=3)
    browser.find_element(By.CSS_SELECTOR, "#options input[name='files']").send_keys(str(third))
    browser.find_element(By.ID, "send").click()
    menu = "//li[contains(., 'listen')]//button[contains(., 'Teach mimi this song')]"
    _wait_for(browser, lambda d: d.find_elements(By.XPATH, menu))[0].click()
    field = _wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#modal[open] input"))
    field[0].send_keys("Pulse")
    browser.find_element(By.ID, "modal-submit").click()  # the modal mimi opened, submitted
    assert "Pulse.mp3" in _wait_for(browser, lambda d: _find(d, "Learned Pulse from"))

    _run(browser, "help")
    helped = _wait_for(
        browser, lambda d: next((t for t in _texts(d) if "Only you can see this" in t), None)
    )
    assert "/teach" in helped
    Select(browser.find_element(By.ID, "member")).select_by_visible_text("Ben")
    _wait_for(browser, lambda d: not any("Only you can see this" in t for t in _texts(d)))
    Select(browser.find_element(By.ID, "locale")).select_by_value("ja")
    assert "/教える" in browser.find_element(By.ID, "command").text
    assert (data / "mimi.sqlite3").is_file()  # its own data dir
