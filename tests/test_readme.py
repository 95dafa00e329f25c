"""The README's sample of the command line is what the command prints with the models in models/
(figures within a unit of the last digit: other CPUs round differently). `HUB_UPDATE_DOCS=1`
rewrites the sample (and, in tests/test_browser.py, the screenshot) after the models change."""
import os
import re
from pathlib import Path

import pytest

from hub.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMAND = "python -m hub predict examples/"
SAMPLE = re.compile(r"(<!-- output of `" + re.escape(COMMAND) + r"` -->\n```text\n)(.*?)(```)", re.S)
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def skeleton(text: str) -> str:
    return NUMBER.sub("#", text)


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    if not all((ROOT / "models" / task / "model.safetensors").is_file() for task in ("gender", "age", "mood")):
        pytest.skip("the default models are not in models/")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        patch.delenv("HUB_MANIFEST", raising=False)
        from contextlib import redirect_stdout
        from io import StringIO

        out = StringIO()
        with redirect_stdout(out):
            assert main(COMMAND.split()[3:]) == 0
    return out.getvalue()


def test_readme_sample_is_what_the_command_prints(printed):
    match = SAMPLE.search(README.read_text(encoding="utf-8"))
    assert match, f"README.md has no sample of `{COMMAND}`"
    if os.environ.get("HUB_UPDATE_DOCS") == "1":
        text = README.read_text(encoding="utf-8")
        README.write_text(SAMPLE.sub(lambda m: m.group(1) + printed + m.group(3), text), encoding="utf-8")
        return
    shown = match.group(2)
    hint = "the README's sample is stale: run HUB_UPDATE_DOCS=1 pytest tests/test_readme.py tests/test_browser.py"
    assert skeleton(shown) == skeleton(printed), hint
    for a, b in zip(NUMBER.findall(shown), NUMBER.findall(printed)):
        assert abs(float(a) - float(b)) <= 1, (hint, a, b)
