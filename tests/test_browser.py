"""A real browser on the app: Playwright driving Debian's chromium (no `playwright install`).

Install: `pip install -e '.[browser]'` and `apt-get install -y chromium` (.ci/run does both);
set HUB_CHROMIUM to use another chromium binary. Skipped with the reason when either is missing.
Screenshots land in test-artifacts/. With HUB_UPDATE_DOCS=1, the app with the default models is
also saved as docs/screenshot.png, the screenshot in the README.
"""
import os
import shutil
from pathlib import Path

import pytest

from hub.config import DEFAULT_MANIFEST, read_manifest
from conftest import free_port, served_app

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("HUB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DEMO = []  # the app under test (app_url), for what the server holds
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-dev-shm-usage"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[browser]')")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium, or set HUB_CHROMIUM)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def app_url(tiny_manifest, tmp_path_factory):
    cache = tmp_path_factory.mktemp("browser_cache")
    with served_app(tiny_manifest, cache) as (demo, url):
        DEMO.append(demo)
        yield url, cache


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        except Exception as err:  # noqa: BLE001 - e.g. a chromium too old for this playwright
            pytest.skip(f"chromium at {CHROMIUM} does not start under playwright: {err}")
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)  # a busy CI machine
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "browser_last.png", full_page=True)  # the last state
        page.close()


def analyze_in_visible_tab(page, photo: Path):
    """Upload the photo in the tab shown and press its Analyze button; the tab's panel."""
    panel = page.locator("[role=tabpanel]:visible").first
    panel.locator("input[type=file]").first.set_input_files(photo)
    panel.locator("img[src*='/gradio_api/file=']").first.wait_for()  # the upload's preview
    panel.get_by_role("button", name="Analyze").click()
    return panel


def test_upload_analyze_and_switch_tabs(page, app_url, astronaut, tmp_path):
    url, cache = app_url
    photo = tmp_path / "astronaut.jpg"
    astronaut.save(photo, quality=90)
    before = {str(p) for p in cache.rglob("*")}

    page.goto(url)
    page.get_by_role("tab", name="All attributes").wait_for()
    analyze_in_visible_tab(page, photo)
    boxes = page.locator("img[src^='data:image/jpeg;base64,']").first  # the numbered boxes, inline
    boxes.wait_for()
    page.get_by_text("Found 1 face").first.wait_for()
    page.get_by_text("Face 1", exact=True).first.wait_for()
    page.locator("[data-testid=female-confidence-set]").first.wait_for()  # the gender label
    page.locator("[data-testid=happy-confidence-set]").first.wait_for()   # the mood label
    page.get_by_text("years").first.wait_for()
    assert page.evaluate("img => img.naturalWidth", boxes.element_handle()) == 512

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser.png", full_page=True)

    page.get_by_role("tab", name="Mood").click()
    panel = analyze_in_visible_tab(page, photo)
    panel.locator("img[src^='data:image/jpeg;base64,']").first.wait_for()
    panel.locator("[data-testid=block-label]", has_text="Face 1").first.wait_for()  # the label's title
    panel.locator("[data-testid=happy-confidence-set]").first.wait_for()
    assert panel.locator("[data-testid=female-confidence-set]").count() == 0  # mood only
    page.screenshot(path=ARTIFACTS / "browser_mood.png", full_page=True)

    assert {str(p) for p in cache.rglob("*")} == before  # the browser's uploads are gone too


def test_the_photo_on_screen_can_be_analysed_again(page, app_url, astronaut, tmp_path):
    """Issue 15.1: no face found, so tick "classify the whole image" as the message advises, and
    Analyze again: the same photo, now held in the server's memory (its file is gone)."""
    url, cache = app_url
    photo = tmp_path / "close_up.png"  # a face too small for the detector, but a face
    astronaut.crop((170, 55, 278, 180)).resize((26, 30)).save(photo)
    page.goto(url)
    page.get_by_role("tab", name="All attributes").wait_for()
    panel = analyze_in_visible_tab(page, photo)
    panel.get_by_text("No face found").first.wait_for()
    assert not [p for p in cache.rglob("close_up.png")]  # the upload file went with the answer
    panel.get_by_label("Classify the whole image if no face is found").check()
    panel.get_by_role("button", name="Analyze").click()
    panel.get_by_text("Treated the whole image as one face").first.wait_for()
    assert page.get_by_text("not available").count() == 0
    page.screenshot(path=ARTIFACTS / "browser_again.png", full_page=True)


def test_a_photo_is_held_from_its_upload_until_its_page_closes(page, app_url, tmp_path):
    """Chosen: decoded into memory at once (Analyze may come much later, the file is swept within
    minutes); the page closed: the photo is dropped."""
    from PIL import Image

    url, _ = app_url
    photos, photo = DEMO[0].photos, tmp_path / "held.png"
    Image.new("RGB", (300, 200), (90, 120, 150)).save(photo)
    context = page.context.browser.new_context()  # another visitor
    other = context.new_page()
    other.goto(url)
    other.locator("[role=tabpanel]:visible").first.locator("input[type=file]").first.set_input_files(photo)
    wait_for(lambda: any(path.endswith("held.png") for path in photos.held_paths()))
    context.close()
    wait_for(lambda: not any(path.endswith("held.png") for path in photos.held_paths()))


def wait_for(condition, seconds: float = 60) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def result_panel(panel):
    """The alert the result column shows when a request has no answer."""
    return panel.locator(".hub-error[role=alert]").first


def test_header_and_the_field_tab_say_what_exists(page, app_url):
    """Point 2: the header promises only what has a model; the field tab explains, once, in plain
    words, and sends the user to the "Train your own" tab; no command is shown anywhere."""
    url, _ = app_url
    page.goto(url)
    page.get_by_text("guesses, for each one, its age, gender and mood.").wait_for()
    page.get_by_role("tab", name="Field of study").click()
    panel = page.locator("[role=tabpanel]:visible").first
    panel.get_by_text("No field of study model comes with this app").wait_for()
    panel.get_by_text("Train one yourself in the Train your own tab").wait_for()
    text = page.locator("body").inner_text()
    assert "python -m" not in text and "finetune" not in text and "spaces.yaml" not in text
    assert text.count("No field of study model comes with this app") == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser_field_tab.png", full_page=True)


def test_a_bad_file_is_refused_on_upload_and_the_reason_stays(page, app_url, astronaut, tmp_path):
    """Point 4: a text file named .jpg is refused as soon as it is uploaded, in the result panel,
    in plain words, and the message is still there after the pop-ups have gone."""
    url, cache = app_url
    notes = tmp_path / "holiday.jpg"
    notes.write_text("Dear diary, this is not a photo.")
    page.goto(url)
    panel = page.locator("[role=tabpanel]:visible").first
    panel.locator("input[type=file]").first.set_input_files(notes)
    alert = result_panel(panel)
    alert.wait_for()
    assert alert.inner_text().strip() == "This file is not an image we can read."
    page.wait_for_timeout(11_000)  # longer than a Gradio toast lasts
    assert alert.is_visible()
    assert panel.locator("img[src*='holiday']").count() == 0  # the broken photo is gone
    assert not [p for p in cache.rglob("holiday.jpg")]  # and deleted
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser_bad_file.png", full_page=True)

    photo = tmp_path / "astronaut.jpg"  # a good photo afterwards clears the refusal
    astronaut.save(photo, quality=90)
    analyze_in_visible_tab(page, photo)
    panel.get_by_text("Found 1 face").first.wait_for()
    assert result_panel(panel).count() == 0


def test_a_failed_url_fetch_says_why_in_the_result_panel(page, app_url, monkeypatch):
    """Point 4: a URL that cannot be fetched gives its reason where the answer would be."""
    url, _ = app_url
    monkeypatch.setenv("HUB_URL_ALLOW_HOSTS", "127.0.0.1")  # a test server, then nothing listening
    page.goto(url)
    panel = page.locator("[role=tabpanel]:visible").first
    panel.get_by_placeholder("https://…").fill(f"http://127.0.0.1:{free_port()}/face.jpg")
    panel.get_by_role("button", name="Analyze").click()
    alert = result_panel(panel)
    alert.wait_for()
    assert alert.inner_text().strip() == "Could not get an image from this URL: could not connect to 127.0.0.1."
    assert page.locator(".toast-body").count() == 0  # in the panel, not in a pop-up
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "browser_bad_url.png", full_page=True)


@pytest.fixture(scope="module")
def default_app_url(tmp_path_factory):
    """The app with the default models of models/ (skipped without them)."""
    manifest = read_manifest(DEFAULT_MANIFEST)
    missing = [t for t in ("gender", "age", "mood") if not (ROOT / "models" / t / "model.safetensors").is_file()]
    if missing:
        pytest.skip(f"no default model for {missing}")
    with served_app(manifest, tmp_path_factory.mktemp("default_cache")) as (_, url):
        yield url


def test_screenshot_of_the_app_with_the_default_models(browser, default_app_url):
    """The README's picture (docs/screenshot.png with HUB_UPDATE_DOCS=1): three faces, numbered inside
    the photo (face 2 is small: low resolution), each with its answers."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(default_app_url)
        analyze_in_visible_tab(page, ROOT / "examples" / "three_faces.jpg")
        page.get_by_text("Found 3 faces").first.wait_for()
        page.get_by_text("Face 2 (low resolution)").first.wait_for()
        page.get_by_text("Face 3", exact=True).first.wait_for()
        page.wait_for_timeout(500)  # the labels' bars animate in
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "screenshot.png", full_page=True)
        if os.environ.get("HUB_UPDATE_DOCS") == "1":
            shutil.copyfile(ARTIFACTS / "screenshot.png", ROOT / "docs" / "screenshot.png")
    finally:
        page.close()
