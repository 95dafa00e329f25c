"""`python -m hub predict`, called in-process through hub.__main__.main."""
import json
import re

import pytest
from PIL import Image

from hub.__main__ import main


@pytest.fixture(scope="module")
def photos(astronaut, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    astronaut.save(folder / "astronaut.jpg")
    (folder / "nested").mkdir()
    Image.new("RGB", (200, 150), (90, 90, 90)).save(folder / "nested" / "blank.png")
    astronaut.crop((170, 55, 278, 180)).resize((26, 30)).save(folder / "nested" / "close_up.png")
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    return folder


def predict(capsys, *args):
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_for_one_photo(capsys, photos, tiny_manifest_path):
    code, out, _ = predict(capsys, photos / "astronaut.jpg", "--json", "--manifest", tiny_manifest_path)
    result = json.loads(out)
    assert code == 0 and result["path"].endswith("astronaut.jpg")
    [face] = result["faces"]
    # every task that has a model; the one without (field) is not mentioned
    assert {"gender", "age", "mood"} <= set(face) and "field" not in face and result["errors"] == {}
    assert "field" not in out


def test_readable_lines_and_task_choice(capsys, photos, tiny_manifest_path):
    code, out, _ = predict(capsys, photos / "astronaut.jpg", "--task", "gender", "--task", "age",
                           "--manifest", tiny_manifest_path)
    lines = out.splitlines()
    assert code == 0 and lines[0].endswith("Found 1 face, numbered left to right.")
    assert lines[1].startswith("  face 1 at (") and "gender " in lines[1] and "age " in lines[1]
    assert "mood" not in out


def test_folder_gives_json_lines_and_counts_failures(capsys, photos, tiny_manifest_path):
    code, out, err = predict(capsys, photos, "--json", "--whole-image", "--task", "mood",
                             "--manifest", tiny_manifest_path)
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in map(json.loads, out.splitlines())}
    assert sorted(rows) == ["astronaut.jpg", "blank.png", "broken.png", "close_up.png"]
    assert "not an image" in rows["broken.png"]["error"]
    assert rows["close_up.png"]["whole_image"] and "mood" in rows["close_up.png"]["faces"][0]
    assert rows["blank.png"]["faces"] == [] and not rows["blank.png"]["whole_image"]  # gray is no face
    assert code == 1 and "1 of 4 files could not be read" in err


def test_usage_errors(capsys, photos, tiny_manifest_path):
    code, _, err = predict(capsys, photos / "astronaut.jpg", "--task", "height", "--manifest", tiny_manifest_path)
    assert code == 2 and "unknown task 'height'" in err
    code, _, err = predict(capsys, photos / "missing.jpg", "--manifest", tiny_manifest_path)
    assert code == 2 and "does not exist" in err
    code, _, err = predict(capsys, photos / "broken.png", "--manifest", tiny_manifest_path)
    assert code == 1 and "not an image" in err


def test_a_task_without_a_model_asked_by_name_says_how_to_train_once(capsys, photos, tiny_manifest_path):
    code, out, err = predict(capsys, photos, "--task", "field", "--manifest", tiny_manifest_path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: No model for 'field' yet.") and "python -m finetune --task field" in err


UI_WORDS = ("tick", "click", "checkbox", "button", "tab", "upload", "press", "drop")


def test_every_message_uses_command_line_words(capsys, photos, tiny_manifest_path, tmp_path):
    """Issue 15, point 7: what the CLI prints names its own options, never the app's controls."""
    (tmp_path / "empty").mkdir()
    runs = [(photos / "nested" / "blank.png",), (photos / "nested" / "blank.png", "--whole-image"),
            (photos / "broken.png",), (photos,), (photos, "--json"), (tmp_path / "empty",),
            (photos / "astronaut.jpg", "--task", "field"), (photos / "missing.jpg",)]
    said = []
    for args in runs:
        _, out, err = predict(capsys, *args, "--manifest", tiny_manifest_path)
        said.append(out + err)
    text = "\n".join(said).lower()
    assert "add --whole-image if it is a close-up of one face" in text  # the no-face advice
    for word in UI_WORDS:
        assert not re.search(rf"\b{word}", text), word
