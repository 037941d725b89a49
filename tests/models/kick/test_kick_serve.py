"""The kick web page end to end in headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
the page loads, generates, shows mel images, plays the audio and offers the download. Slow."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time

import pytest


def _program(name: str) -> str | None:
    """The registered program (audiolab.data.sources: chromium, chromedriver from `make data`), else None."""
    from audiolab.data.sources import SourceMissing, locate

    try:
        return str(locate(name))
    except SourceMissing:
        return None


CHROMIUM = _program("chromium")
DRIVER = _program("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
         "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def pipeline(compose_run, tmp_path_factory):
    from audiolab.models.kick.pipeline import KickPipeline
    from audiolab.train import run

    out = tmp_path_factory.mktemp("kick_serve_run")
    run(compose_run(["experiment=kick_unet", "debug=fast", "callbacks.media=null", "test=false"], out))
    return KickPipeline.from_checkpoint(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(pipeline):
    from werkzeug.serving import make_server

    from audiolab.models.kick.serve import create_app

    port = _free_port()
    srv = make_server("127.0.0.1", port, create_app(pipeline), threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{port}"
    srv.shutdown()


def test_api_rejects_bad_input_and_warns_unknown(server):
    import json
    import urllib.error
    import urllib.request

    def post(body):
        req = urllib.request.Request(server + "/api/generate", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(req, timeout=120)

    with pytest.raises(urllib.error.HTTPError) as err:
        post({"n": 0})
    assert err.value.code == 400 and "count must be" in err.value.read().decode()
    data = json.loads(post({"keywords": "long, wobbly", "n": 2, "steps": 2, "seed": 4}).read())
    assert data["unknown"] == ["wobbly"] and data["keywords_used"] == ["long"]
    assert [it["seed"] for it in data["items"]] == [4, 5]
    wav = urllib.request.urlopen(server + data["items"][0]["audio"], timeout=30).read()
    assert wav[:4] == b"RIFF" and len(wav) == 44 + 2 * 88200


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                    reason="needs Debian's chromium and chromium-driver (make data installs them)")
def test_page_generates_and_plays_in_headless_chromium(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="kick-chromium-")
    for f in [*FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.set_script_timeout(60)
        driver.get(server + "/")
        assert "Kick generator" in driver.title or "kicks" in driver.title
        assert "synth" in driver.find_element(By.ID, "vocab").text
        for key, value in (("keywords", "long, sub"), ("n", "2"), ("steps", "2"), ("seed", "7")):
            el = driver.find_element(By.ID, key)
            el.clear()
            el.send_keys(value)
        driver.find_element(By.ID, "generate").click()
        WebDriverWait(driver, 120).until(lambda d: "done" in d.find_element(By.ID, "status").text)
        kicks = driver.find_elements(By.CSS_SELECTOR, "#results .kick")
        assert len(kicks) == 2 and "seed 7" in kicks[0].text and "seed 8" in kicks[1].text
        # mel images decoded
        widths = driver.execute_script("return [...document.querySelectorAll('img.mel')].map(i => i.naturalWidth)")
        assert len(widths) == 2 and all(w > 0 for w in widths)
        # the audio loads (2 s) and plays
        state = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const a = document.querySelector('#results audio');
            const go = () => a.play().then(() => setTimeout(() => done({paused: a.paused, t: a.currentTime,
                                                                       d: a.duration}), 300),
                                           e => done({error: String(e)}));
            if (a.readyState >= 1) go(); else a.addEventListener('loadedmetadata', go);
        """)
        assert "error" not in state, state
        assert abs(state["d"] - 2.0) < 0.01 and not state["paused"] and state["t"] > 0, state
        href = driver.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
        assert "download=1" in href
        size = driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.arrayBuffer())"
            ".then(b => done(b.byteLength));", href)
        assert size == 44 + 2 * 88200
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        time.sleep(0.1)


def test_serve_cli_needs_ckpt():
    from audiolab.models.kick.serve import main

    with pytest.raises(SystemExit, match="ckpt="):
        main([])
