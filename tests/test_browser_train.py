"""Train your own in a real browser: upload a zip, read the report, then predict on a photo with the new
model in the field tab. Same chromium set-up as test_browser.py (skipped with the reason without it).
Screenshots: test-artifacts/train_report.png and train_predict.png."""
import pytest

from conftest import served_app
from test_browser import ARGS, ARTIFACTS, CHROMIUM, sync_api
from test_train_your_own import MIN_PER_LABEL, TINT, jpeg, make_zip, tinted_faces


@pytest.fixture(scope="module")
def app_url(tiny_manifest, tmp_path_factory):
    with served_app(tiny_manifest, tmp_path_factory.mktemp("browser_train_cache")) as (_, url):
        yield url


def test_upload_zip_see_report_then_predict(app_url, astronaut, tmp_path):
    files = {f"{label}/{i}.jpg": jpeg(face) for label in TINT
             for i, face in enumerate(tinted_faces(astronaut, label, MIN_PER_LABEL + 2, seed=len(label)))}
    archive = make_zip(tmp_path / "my_labels.zip", files)
    photo = tmp_path / "astronaut.jpg"
    astronaut.save(photo, quality=90)
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        except Exception as err:  # noqa: BLE001 - e.g. a chromium too old for this playwright
            pytest.skip(f"chromium at {CHROMIUM} does not start under playwright: {err}")
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(180_000)  # a training on a busy CI machine
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            page.goto(app_url)
            page.get_by_role("tab", name="Train your own").click()
            panel = page.locator("[role=tabpanel]:visible").first
            panel.locator("input[type=file]").first.set_input_files(archive)
            panel.get_by_text("my_labels.zip").first.wait_for()
            panel.get_by_role("button", name="Train", exact=True).click()
            panel.get_by_text("Test accuracy").first.wait_for()
            panel.get_by_text("always answering").first.wait_for()
            panel.locator("img[src^='data:image/png;base64,']").first.wait_for()  # the figures, inline
            panel.get_by_role("button", name="Download the model (zip)").wait_for()
            page.screenshot(path=ARTIFACTS / "train_report.png", full_page=True)

            page.get_by_role("tab", name="Field of study").click()
            panel = page.locator("[role=tabpanel]:visible").first
            panel.locator("input[type=file]").first.set_input_files(photo)
            panel.locator("img[src*='/gradio_api/file=']").first.wait_for()
            panel.get_by_role("button", name="Analyze").click()
            panel.locator("img[src^='data:image/jpeg;base64,']").first.wait_for()
            label = panel.locator("[data-testid=red-confidence-set], [data-testid=blue-confidence-set]").first
            label.wait_for()  # the session's own labels answer in the field tab
            page.screenshot(path=ARTIFACTS / "train_predict.png", full_page=True)
        finally:
            page.screenshot(path=ARTIFACTS / "train_last.png", full_page=True)
            browser.close()
