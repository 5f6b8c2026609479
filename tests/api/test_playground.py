"""The playground page (/ and /playground) in a real browser: headless Chromium from Debian's packages
(`apt-get install chromium chromium-driver`, the README's test command), driven by Selenium, against the
running service with its bundled models. Live mode hears sample.wav through Chromium's fake microphone.

Screenshots of both modes go to test-artifacts/playground/ (the README shows one)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.api.test_realtime import file_text
from tests.support import ROOT_DIR, SAMPLE_WAV, stm_text, word_error_rate

pytestmark = pytest.mark.slow

SCREENSHOTS = ROOT_DIR / "test-artifacts" / "playground"
LIVE_MODEL = "whisper-base"


def chromium() -> tuple[str, str]:
    """Debian's Chromium and its driver; their absence fails the test (CI installs them), never skips it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    assert browser and driver, "install them: apt-get install -y chromium chromium-driver"
    return browser, driver


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    binary, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400",
                "--autoplay-policy=no-user-gesture-required",
                # the microphone: sample.wav, once, then silence; no permission prompt
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={SAMPLE_WAV}%noloop"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    # Service(path): Selenium uses Debian's chromedriver and never fetches one.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 60, what: str = ""):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d))
    except TimeoutException:
        error = driver.find_element(By.ID, "error")
        raise AssertionError(f"timed out waiting for {what}; the page's error box: {error.text!r}") from None


def open_page(driver, server, key: str, path: str = "/playground") -> None:
    driver.get(server.root_url + path)
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(key, Keys.TAB)  # `change`: stored in sessionStorage, models loaded again


def models_loaded(driver) -> bool:
    return len(Select(driver.find_element(By.ID, "model")).options) > 0


def test_page_is_served_self_contained(server):
    """The page and its files come from the service itself, public (no key), with a policy that lets
    nothing load from elsewhere; unknown names are the API's 404."""
    for path in ("/", "/playground"):
        r = httpx.get(server.root_url + path, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        # every script and stylesheet it names is one of this server's files
        for ref in re.findall(r'(?:src|href)="([^"]+)"', r.text):
            assert ref.startswith("/playground/"), ref
            assert httpx.get(server.root_url + ref, timeout=30).status_code == 200
    r = httpx.get(server.root_url + "/playground/../config.yaml", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_file_mode_diarized_transcript(browser, server, downloads):
    """Upload sample.wav with diarize on: two coloured speakers and the expected words; a word click seeks
    the player to the word; a renamed speaker shows in the srt download, which parses."""
    open_page(browser, server, server.key)
    wait(browser, models_loaded, what="the model list")
    browser.find_element(By.ID, "file").send_keys(str(SAMPLE_WAV))
    browser.find_element(By.ID, "diarize").click()
    browser.find_element(By.ID, "transcribe").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".turn .word"), 300, "the transcript")

    speakers = {e.get_attribute("data-speaker") for e in browser.find_elements(By.CSS_SELECTOR, ".speaker")}
    assert len(speakers) == 2, speakers
    colours = {e.value_of_css_property("border-left-color") for e in browser.find_elements(By.CSS_SELECTOR, ".turn")}
    assert len(colours) == 2, colours  # one colour per speaker
    text = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".turn .text"))
    assert word_error_rate(stm_text(), text) < 0.3
    for expected in ("Chicago", "Jersey"):
        assert expected in text

    player = browser.find_element(By.ID, "player")
    wait(browser, lambda d: d.execute_script("return arguments[0].readyState", player) >= 1, 30, "the player")
    words = browser.find_elements(By.CSS_SELECTOR, ".word")
    assert all(re.fullmatch(r"\d+% sure", w.get_attribute("title")) for w in words)  # each word's probability
    word = next(w for w in words if float(w.get_attribute("data-start")) > 10)
    start = float(word.get_attribute("data-start"))
    word.click()
    position = browser.execute_script("return arguments[0].currentTime", player)
    assert abs(position - start) < 0.3, (position, start)
    # the word being spoken is highlighted as it plays
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".word.current"), 10, "a highlighted word")
    browser.execute_script("arguments[0].pause()", player)

    # keyboard: a turn's time button seeks too
    button = browser.find_elements(By.CSS_SELECTOR, ".turn .time")[1]
    button.send_keys(Keys.ENTER)
    turn_start = browser.execute_script("return arguments[0].currentTime", player)
    assert turn_start > 0
    browser.execute_script("arguments[0].pause()", player)

    name = browser.find_element(By.ID, "name-SPEAKER_00")
    name.clear()
    name.send_keys("Diane")
    assert "Diane" in {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".speaker")}
    browser.save_screenshot(str(SCREENSHOTS / "file-mode.png"))

    for old in downloads.glob("transcript*"):
        old.unlink()
    browser.find_element(By.ID, "dl-srt").click()
    srt = wait(browser, lambda d: next(iter(downloads.glob("transcript*.srt")), None), 30, "the srt download")
    cues = parse_srt(srt.read_text())
    assert len(cues) >= 2 and any(text.startswith("Diane: ") for _, _, text in cues)
    assert all(a <= b for (a, _, _), (b, _, _) in zip(cues, cues[1:]))
    assert all(start < end for start, end, _ in cues)


def parse_srt(body: str) -> list[tuple[float, float, str]]:
    """Strict SubRip: numbered cues from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, text, a blank line between."""
    stamp = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
    cues = []
    for n, block in enumerate(body.strip().split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(n), block
        m = re.fullmatch(f"{stamp} --> {stamp}", lines[1])
        assert m, lines[1]
        g = [int(x) for x in m.groups()]
        cues.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                     "\n".join(lines[2:])))
    return cues


# For every visible text: its colour against the first opaque background behind it, WCAG's contrast ratio.
CONTRAST_JS = """
const lum = (c) => {
  const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map((v) => {
    v = Number(v) / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const opaque = (c) => !c.startsWith("rgba") || Number(c.match(/[\\d.]+/g)[3]) === 1;
const background = (el) => {
  for (; el; el = el.parentElement) {
    const c = getComputedStyle(el).backgroundColor;
    if (opaque(c)) return c;
  }
  return "rgb(255, 255, 255)";
};
const worst = [];
for (const el of document.querySelectorAll("body *")) {
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.offsetParent) continue;
  const [a, b] = [lum(getComputedStyle(el).color), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) worst.push(`${el.tagName}#${el.id}.${el.className}: ${ratio.toFixed(2)}`);
}
return worst;
"""

UNLABELLED_JS = """
return [...document.querySelectorAll("input, select, button, [role=tab]")]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
  .map((el) => el.outerHTML);
"""


def test_page_is_accessible_at_phone_width(browser, server):
    """Every control has a label, text contrast passes WCAG AA (4.5:1) in both modes, nothing needs
    sideways scrolling at phone width, and the tabs work from the keyboard."""
    browser.set_window_size(390, 844)
    try:
        open_page(browser, server, server.key)
        wait(browser, models_loaded, what="the model list")
        for tab in ("tab-file", "tab-live"):
            browser.find_element(By.ID, tab).click()
            assert browser.execute_script(UNLABELLED_JS) == []
            assert browser.execute_script(CONTRAST_JS) == []
            assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        # keyboard: arrow keys move between the tabs and show their panels
        browser.find_element(By.ID, "tab-live").send_keys(Keys.ARROW_RIGHT)
        assert browser.switch_to.active_element.get_attribute("id") == "tab-file"
        assert browser.find_element(By.ID, "panel-file").is_displayed()
        assert not browser.find_element(By.ID, "panel-live").is_displayed()
    finally:
        browser.set_window_size(1200, 1400)


def test_wrong_key_shows_the_401_message(browser, server):
    open_page(browser, server, "not-the-key", path="/")
    error = wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed() and d.find_element(By.ID, "error"),
                 30, "the error message")
    r = httpx.get(f"{server.base_url}/models", headers={"Authorization": "Bearer not-the-key"}, timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["message"] in error.text and "401" in error.text
    # a transcription attempt says the same, in words
    browser.find_element(By.ID, "file").send_keys(str(SAMPLE_WAV))
    browser.find_element(By.ID, "transcribe").click()
    wait(browser, lambda d: "401" in d.find_element(By.ID, "error").text, 30, "the 401 on submit")


def test_live_mode_transcribes_the_microphone(browser, server):
    """Chromium's fake microphone plays sample.wav once at real time: completed lines appear while it plays
    and, together, match the file transcription of the same clip within WER 0.15."""
    open_page(browser, server, server.key)
    wait(browser, models_loaded, what="the model list")
    browser.find_element(By.ID, "tab-live").click()
    Select(browser.find_element(By.ID, "live-model")).select_by_value(LIVE_MODEL)
    browser.find_element(By.ID, "live-toggle").click()
    wait(browser, lambda d: d.find_element(By.ID, "live-status").text == "Listening…", 30, "the microphone")
    started = time.monotonic()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#live-lines li.completed"), 60, "a completed line")
    # the clip is 30 s; its last words end at about 29 s, then silence closes the last line
    time.sleep(max(0.0, 34 - (time.monotonic() - started)))
    browser.save_screenshot(str(SCREENSHOTS / "live-mode.png"))
    browser.find_element(By.ID, "live-toggle").click()
    wait(browser, lambda d: d.find_element(By.ID, "live-status").text == "Not listening.", 60, "the session's end")
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#live-lines li.failed")
    lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#live-lines li.completed")]
    live = " ".join(lines)
    file = file_text(server, LIVE_MODEL)
    wer = word_error_rate(file, live)
    print(f"live mode: {len(lines)} lines, WER {wer:.3f} against the file transcription "
          f"({word_error_rate(stm_text(), live):.3f} against the reference)\n  file: {file}\n  live: {live}")
    assert len(lines) >= 2 and wer <= 0.15
