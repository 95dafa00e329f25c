"""The README's "Train your own" screenshots, from the real app in chromium (as tests/test_browser_train.py
drives it): `python docs/make_train_screenshots.py` writes docs/train_your_own_report.png and
docs/train_your_own_predict.png, training on examples/make_train_demo.py's zip with the shipped backbone.
Needs playwright and a chromium (HUB_CHROMIUM, else `chromium` on PATH)."""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> int:
    from playwright.sync_api import sync_playwright

    from hub.ui import build_demo, launch
    from make_train_demo import main as make_zip

    chromium = os.environ.get("HUB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    work = Path(tempfile.mkdtemp(prefix="hub-shots-"))
    archive = make_zip(str(work / "train_demo.zip"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = build_demo()
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(600_000)
            page.goto(url)
            page.get_by_role("tab", name="Train your own").click()
            panel = page.locator("[role=tabpanel]:visible").first
            panel.locator("input[type=file]").first.set_input_files(archive)
            panel.get_by_text("train_demo.zip").first.wait_for()
            panel.get_by_role("button", name="Train", exact=True).click()
            panel.get_by_text("Test accuracy").first.wait_for()
            panel.locator("img[src^='data:image/png;base64,']").last.wait_for()
            page.screenshot(path=ROOT / "docs" / "train_your_own_report.png", full_page=True)
            page.get_by_role("tab", name="Field of study").click()
            panel = page.locator("[role=tabpanel]:visible").first
            panel.locator("input[type=file]").first.set_input_files(ROOT / "examples" / "three_faces.jpg")
            panel.locator("img[src*='/gradio_api/file=']").first.wait_for()
            panel.get_by_role("button", name="Analyze").click()
            panel.locator("[data-testid=warm-confidence-set], [data-testid=cool-confidence-set]").first.wait_for()
            page.screenshot(path=ROOT / "docs" / "train_your_own_predict.png", full_page=False)
            browser.close()
    finally:
        demo.close()
        shutil.rmtree(work, ignore_errors=True)
    print(ROOT / "docs" / "train_your_own_report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
