"""`python -m hub predict`, called in-process through hub.__main__.main."""
import json

import pytest
from PIL import Image

from hub.__main__ import main


@pytest.fixture(scope="module")
def photos(astronaut, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    astronaut.save(folder / "astronaut.jpg")
    (folder / "nested").mkdir()
    Image.new("RGB", (200, 150), (90, 90, 90)).save(folder / "nested" / "blank.png")
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
    assert {"gender", "age", "mood"} <= set(face) and "field" in result["errors"]


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
    assert sorted(rows) == ["astronaut.jpg", "blank.png", "broken.png"]
    assert "not an image" in rows["broken.png"]["error"]
    assert rows["blank.png"]["whole_image"] and "mood" in rows["blank.png"]["faces"][0]
    assert code == 1 and "1 of 3 files could not be read" in err


def test_usage_errors(capsys, photos, tiny_manifest_path):
    code, _, err = predict(capsys, photos / "astronaut.jpg", "--task", "height", "--manifest", tiny_manifest_path)
    assert code == 2 and "unknown task 'height'" in err
    code, _, err = predict(capsys, photos / "missing.jpg", "--manifest", tiny_manifest_path)
    assert code == 2 and "does not exist" in err
    code, _, err = predict(capsys, photos / "broken.png", "--manifest", tiny_manifest_path)
    assert code == 1 and "not an image" in err
