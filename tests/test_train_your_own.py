"""Train your own: the zip checks, the head-only fit, the tab through gradio_client, the download round trip
and the same fast path from the command line; all offline, on the tiny backbone of conftest.py."""
from __future__ import annotations

import dataclasses
import io
import json
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hub.train_data import MIN_PER_LABEL, UploadRefused, unpack
from conftest import served_app

TINT = {"red": (90, -40, -40), "blue": (-40, -40, 90)}


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def tinted_faces(astronaut, label: str, count: int, seed: int = 0) -> list[Image.Image]:
    """The astronaut's head, shifted and tinted per label: MTCNN finds the face, the tiny model the tint."""
    rng = np.random.default_rng(seed)
    base = np.asarray(astronaut.crop((100, 0, 356, 256)).resize((128, 128)), dtype=float)
    faces = []
    for _ in range(count):
        shifted = np.roll(base, tuple(rng.integers(-6, 7, 2)), axis=(0, 1)) + TINT[label]
        faces.append(Image.fromarray(np.clip(shifted + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)))
    return faces


def make_zip(path: Path, files: dict[str, bytes], dirs=(), symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in dirs:
            archive.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


@pytest.fixture(scope="module")
def small_photo():
    return jpeg(Image.new("RGB", (24, 24), (200, 100, 50)))


def labelled(small_photo, labels=("cs", "econ"), per_label=MIN_PER_LABEL, prefix="") -> dict[str, bytes]:
    return {f"{prefix}{label}/{i}.jpg": small_photo for label in labels for i in range(per_label)}


# --- the zip checks ---------------------------------------------------------------------------------

def test_the_three_layouts(tmp_path, small_photo):
    folder_per_label = make_zip(tmp_path / "a.zip", labelled(small_photo, prefix="my photos/"))
    upload = unpack(folder_per_label, tmp_path / "a", max_bytes=10**7, max_images=100)
    assert upload.labels == ["cs", "econ"] and len(upload.photos) == 20
    assert {p.split for p in upload.photos} == {None} and upload.photos[0].name == "cs/0.jpg"
    assert all(p.path.is_relative_to(tmp_path / "a") and p.path.is_file() for p in upload.photos)

    files = {**labelled(small_photo, prefix="train/"), "validation/cs/v.jpg": small_photo,
             "test/econ/t.jpg": small_photo, "__MACOSX/._x.jpg": b"junk", "train/.DS_Store": b"junk"}
    upload = unpack(make_zip(tmp_path / "b.zip", files), tmp_path / "b", max_bytes=10**7, max_images=100)
    assert [p.split for p in upload.photos].count("validation") == 1 and upload.labels == ["cs", "econ"]
    assert any("ignored" in note for note in upload.notes)
    from finetune.user_data import as_dataset

    splits = as_dataset(upload)
    assert sorted(splits) == ["test", "train", "validation"] and len(splits["train"]) == 20

    rows = "id,category\n" + "".join(f"{i},{'cs' if i % 2 else 'econ'}\n" for i in range(22))
    files = {"study/index.csv": rows.encode(), **{f"study/{i}.jpg": small_photo for i in range(21)},
             "study/extra.jpg": small_photo}
    upload = unpack(make_zip(tmp_path / "c.zip", files), tmp_path / "c", max_bytes=10**7, max_images=100)
    assert upload.labels == ["cs", "econ"] and len(upload.photos) == 21
    assert any("1 row of index.csv" in note for note in upload.notes)
    assert any("1 photo not listed" in note for note in upload.notes)


def _bomb():
    return {"cs/big.jpg": b"\0" * 3_000_000}


@pytest.mark.parametrize("name, build, message", [
    ("traversal", lambda p: labelled(p) | {"../evil.jpg": p}, "unsafe path"),
    ("absolute", lambda p: labelled(p) | {"/tmp/evil.jpg": p}, "unsafe path"),
    ("bomb", lambda p: labelled(p) | _bomb(), "zip bomb"),
    ("not a photo", lambda p: labelled(p) | {"cs/notes.txt": b"hello"}, "notes.txt is not a photo"),
    ("text named jpg", lambda p: labelled(p) | {"cs/fake.jpg": b"not a jpeg at all"}, "fake.jpg is not a photo"),
    ("one label", lambda p: labelled(p, labels=("cs",)), "Only one label ('cs')"),
    ("too few", lambda p: labelled(p, per_label=3), "has 3 photos; each label needs at least"),
    ("loose photo", lambda p: labelled(p) | {"x.jpg": p}, "x.jpg is not in a label folder"),
    ("no photos", lambda p: {"readme.csv": b"a,b"}, "is not a photo"),
])
def test_bad_zips_are_refused_with_a_plain_message(tmp_path, small_photo, name, build, message):
    path = make_zip(tmp_path / "bad.zip", build(small_photo))
    with pytest.raises(UploadRefused, match=re.escape(message)):
        unpack(path, tmp_path / "out" / "photos", max_bytes=10**7, max_images=100)
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "out" / "evil.jpg").exists()


def test_links_empty_labels_passwords_and_limits(tmp_path, small_photo):
    out = tmp_path / "out"
    cases = [
        (make_zip(tmp_path / "link.zip", labelled(small_photo), symlinks={"cs/link.jpg": "/etc/passwd"}),
         "symbolic link"),
        (make_zip(tmp_path / "empty.zip", labelled(small_photo), dirs=["german/"]), "'german' has no photos"),
        (make_zip(tmp_path / "many.zip", labelled(small_photo, per_label=30)), "holds 60 photos; the limit here is 50"),
        (tmp_path / "notzip.zip", "not a zip archive"),
    ]
    (tmp_path / "notzip.zip").write_bytes(b"PK? no")
    for path, message in cases:
        with pytest.raises(UploadRefused, match=message):
            unpack(path, out, max_bytes=10**7, max_images=50)
    with pytest.raises(UploadRefused, match="MB; the limit here is"):
        unpack(cases[0][0], out, max_bytes=1000, max_images=50)
    locked = make_zip(tmp_path / "locked.zip", labelled(small_photo))
    data = bytearray(locked.read_bytes())  # zipfile cannot encrypt: set the "encrypted" flag by hand
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        data[start + offset] |= 0x1
    locked.write_bytes(bytes(data))
    with pytest.raises(UploadRefused, match="password"):
        unpack(locked, out, max_bytes=10**7, max_images=50)
    assert not any(out.rglob("link.jpg"))


# --- the head ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("classes", [2, 3])
def test_the_head_is_the_regression_as_one_linear_layer(classes):
    from sklearn.linear_model import LogisticRegression

    from finetune.calibration import softmax
    from finetune.head_only import fit_head

    rng = np.random.default_rng(0)
    y = np.arange(90) % classes
    x = rng.normal(size=(90, 16)) * 3 + 1 + y[:, None] * rng.normal(size=16)
    head = fit_head(x[:60], y[:60], x[60:], y[60:], classes, grid=(0.1,))
    mean, std = x[:60].mean(0), x[:60].std(0) + 1e-6
    reference = LogisticRegression(C=0.1, max_iter=5000).fit((x[:60] - mean) / std, y[:60])
    np.testing.assert_allclose(softmax(head.logits(x[60:])), reference.predict_proba((x[60:] - mean) / std),
                               atol=1e-4)
    assert head.weight.shape == (classes, 16) and 0.05 <= head.temperature <= 20


# --- the app, through gradio_client -------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tiny_manifest, tmp_path_factory):
    from gradio_client import Client

    cache = tmp_path_factory.mktemp("train_cache")
    with served_app(tiny_manifest, cache) as (_, url):
        yield url, cache, Client


@pytest.fixture(scope="module")
def faces_zip(astronaut, tmp_path_factory) -> Path:
    """Two labels of 11 photos each, one of them without a face."""
    files = {}
    for label in TINT:
        for i, face in enumerate(tinted_faces(astronaut, label, MIN_PER_LABEL, seed=len(label))):
            files[f"faces/{label}/{label}_{i}.jpg"] = jpeg(face)
        files[f"faces/{label}/empty_{label}.jpg"] = jpeg(Image.new("RGB", (128, 128), (128, 128, 128)))
    return make_zip(tmp_path_factory.mktemp("zips") / "faces.zip", files)


def test_train_in_the_app_then_predict_and_download(app, faces_zip, astronaut, tmp_path, monkeypatch, capsys):
    import httpx
    from gradio_client import handle_file

    from hub.__main__ import main as hub_main

    url, cache, Client = app
    before = {p for p in cache.rglob("*") if p.is_file()}
    client = Client(url, verbose=False, download_files=False)
    report, result, download = client.predict(handle_file(str(faces_zip)), "", False, api_name="/train")
    assert result["labels"] == ["blue", "red"] and result["sizes"]["train"] >= 12
    assert sorted(result["no_face"]) == ["blue/empty_blue.jpg", "red/empty_red.jpg"]
    assert result["majority_baseline"]["majority_class"] in ("blue", "red")
    for text in ("Test accuracy", "always answering", "Validation accuracy", "No face found in 2 photo(s)",
                 "not what a face reveals", "data:image/png;base64,", "The most ambiguous faces", "Confusion matrix"):
        assert text in report, text
    # the upload and its photos are gone; the download (Gradio's copy) is the one new zip in the cache
    new = {p for p in cache.rglob("*") if p.is_file()} - before
    assert [p.name for p in new if p.suffix == ".zip"] == ["my-face-model.zip"]
    assert not any(p.read_bytes() == faces_zip.read_bytes() or p.suffix == ".jpg" for p in new), new

    photo = tmp_path / "astronaut.jpg"
    astronaut.save(photo)
    _, answer = client.predict(handle_file(str(photo)), "", False, api_name="/field")
    assert set(answer["faces"][0]["field"]["probs"]) == {"blue", "red"} and not answer["errors"]
    _, everything = client.predict(handle_file(str(photo)), "", False, api_name="/all")
    assert set(everything["faces"][0]) >= {"gender", "age", "mood", "field"}
    other = Client(url, verbose=False, download_files=False)  # another session: no model of its own
    _, theirs = other.predict(handle_file(str(photo)), "", False, api_name="/field")
    assert "field" in theirs["errors"]

    archive = tmp_path / "model.zip"
    download = download.get("value", download)  # the button's update: its file, and visible
    archive.write_bytes(httpx.get(download.get("url") or f"{url.rstrip('/')}/gradio_api/file={download['path']}")
                        .raise_for_status().content)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "my-face-model"
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json", "confusion_matrix.png",
                 "class_distribution.png"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["label_names"] == ["blue", "red"] and config["head_only"] and config["temperature"] > 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert hub_main(["predict", str(photo), "--manifest", str(tmp_path / "unzipped" / "spaces.yaml"), "--json"]) == 0
    served = json.loads(capsys.readouterr().out)["faces"][0]["field"]
    assert served["probs"] == pytest.approx(answer["faces"][0]["field"]["probs"], abs=1e-3)  # same model


def test_bad_upload_busy_server_and_no_input(app, tmp_path, small_photo):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from hub import ui_train

    url, cache, Client = app
    client = Client(url, verbose=False, download_files=False)
    evil = make_zip(tmp_path / "evil.zip", labelled(small_photo) | {"../../evil.jpg": small_photo})
    with pytest.raises(AppError, match="unsafe path"):
        client.predict(handle_file(str(evil)), "", True, api_name="/train")
    assert not any(cache.rglob("evil.zip"))  # a refused upload is deleted too
    with pytest.raises(AppError, match="Upload a zip"):
        client.predict(None, "", True, api_name="/train")
    with pytest.raises(AppError, match="not a Hub dataset id"):
        client.predict(None, "../../etc", True, api_name="/train")
    with pytest.raises(AppError, match="cannot reach the Hugging Face Hub"):
        client.predict(None, "someone/faces", True, api_name="/train")
    assert ui_train._training.acquire(blocking=False)
    try:
        with pytest.raises(AppError, match="Another training is running"):
            client.predict(handle_file(str(evil)), "", True, api_name="/train")
    finally:
        ui_train._training.release()


# --- limits and switches ----------------------------------------------------------------------------

def test_time_limit_stops_training(tiny_manifest, tmp_path, small_photo):
    from hub.session_models import SessionModels
    from hub.ui_train import train
    from hub.models import ModelStore

    manifest = dataclasses.replace(tiny_manifest, train_your_own=dataclasses.replace(
        tiny_manifest.train_your_own, max_seconds=0))  # over the limit at the first photo
    path = make_zip(tmp_path / "slow.zip", labelled(small_photo))
    with pytest.raises(UploadRefused, match="took longer than this server allows"):
        train(SessionModels(ModelStore(manifest), "field"), manifest, "s", str(path), "", True,
              tmp_path / "work", lambda *a, **k: None)
    assert not (tmp_path / "work" / "photos").exists() and not (tmp_path / "work" / "crops").exists()


def test_training_is_off_on_a_space_unless_enabled(tiny_manifest):
    from hub.ui_train import training_problem

    assert training_problem(tiny_manifest, environ={}) is None
    assert "turned off on this Space" in training_problem(tiny_manifest, environ={"SPACE_ID": "u/s"})
    on = dataclasses.replace(tiny_manifest, train_your_own=dataclasses.replace(
        tiny_manifest.train_your_own, enabled_on_spaces=True))
    assert training_problem(on, environ={"SPACE_ID": "u/s"}) is None
    gone = dataclasses.replace(tiny_manifest, train_your_own=dataclasses.replace(
        tiny_manifest.train_your_own, backbone="models/nowhere"))
    assert "backbone is missing" in training_problem(gone, environ={})


@pytest.mark.parametrize("edit, key", [
    ({"input_size": 8}, "train_your_own.input_size: must be at least 16"),
    ({"max_images": 0}, "train_your_own.max_images: must be at least 1"),
    ({"task": "age"}, "train_your_own.task: expected a classification task"),
    ({"enabled_on_spaces": "yes"}, "train_your_own.enabled_on_spaces: expected bool"),
    ({"max_zip": 3}, "train_your_own.max_zip: unknown key"),
])
def test_manifest_mistakes_name_the_key(edit, key):
    import yaml

    from hub.config import DEFAULT_MANIFEST, ManifestError, parse_manifest

    raw = yaml.safe_load(DEFAULT_MANIFEST.read_text())
    raw["train_your_own"].update(edit)
    with pytest.raises(ManifestError) as err:
        parse_manifest(raw)
    assert str(err.value).startswith(key)


def test_sessions_expire_and_take_their_folder(tmp_path, tiny_manifest):
    from hub.models import ModelStore
    from hub.session_models import SessionModel, SessionModels

    sessions = SessionModels(ModelStore(tiny_manifest), "field", idle_seconds=3600, max_sessions=2)
    folders = [tmp_path / f"s{i}" for i in range(3)]
    for i, folder in enumerate(folders):
        folder.mkdir()
        sessions.put(f"s{i}", SessionModel(model=None, folder=folder))
    assert not folders[0].exists() and folders[1].exists()  # the oldest went when a third came
    sessions.drop("s1")
    assert not folders[1].exists() and sessions.entry("s2") is not None
    sessions.idle_seconds = -1
    assert sessions.entry("s2") is None and not folders[2].exists()


# --- the command line: the same path, features cached --------------------------------------------------

def test_cli_head_only_caches_features_and_loads_in_the_app(tiny_manifest_path, tmp_path, monkeypatch):
    from test_finetune_data import make_image_folder

    import finetune.head_only as head_only
    from finetune.__main__ import main
    from hub.config import read_manifest
    from hub.models import AttributeModel

    data = make_image_folder(tmp_path / "data", labels=("cs", "econ", "german"), per_class=12)
    out, cache = tmp_path / "model", tmp_path / "cache"
    args = ["--task", "field", "--data", str(data), "--head-only", "--output", str(out), "--cache-dir", str(cache),
            "--manifest", str(tiny_manifest_path), "--no-detect-faces"]
    assert main(args) == 0
    assert len(list((cache / "features").glob("*.npy"))) == 3
    first = json.loads((out / "metrics.json").read_text())
    monkeypatch.setattr(head_only, "embed", lambda *a, **k: pytest.fail("features were not cached"))
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["test"] == first["test"]

    task = dataclasses.replace(read_manifest(tiny_manifest_path).task("field"), labels=("cs", "econ", "german"))
    model = AttributeModel.load(task, str(out))
    assert model.input_size == 32 and model.flip and model.labels == ["cs", "econ", "german"]
    card = (out / "README.md").read_text()
    assert "Head only: the face backbone" in card and "logistic" in card


def test_a_space_that_may_train_gets_finetune_and_the_backbone(tiny_manifest_path, tmp_path):
    import yaml

    from hub import deploy
    from hub.config import read_manifest

    raw = yaml.safe_load(tiny_manifest_path.read_text())
    raw["train_your_own"]["enabled_on_spaces"] = True
    manifest_path = tiny_manifest_path.parent / "spaces-training.yaml"
    manifest_path.write_text(yaml.safe_dump(raw))
    build = deploy.build_space("someone/face-hub", tmp_path / "space", manifest_path=manifest_path)
    out = build.folder
    assert (out / "finetune" / "head_only.py").is_file() and (out / "finetune" / "data.py").is_file()
    assert (out / "models" / "face-backbone" / "model.safetensors").is_file()
    requirements = (out / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "datasets==" in requirements
    space = read_manifest(out / "spaces.yaml")
    assert space.train_your_own.enabled_on_spaces and "field" in space.tasks  # kept: its users train it
    from test_deploy import test_requirements_install_everything_the_space_imports as installs_all

    installs_all(build)  # finetune's imports too


def test_the_upload_sweep_spares_zips_a_while_and_session_folders(tmp_path, monkeypatch):
    import os
    import time

    from hub import upload_folder, uploads

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    photos = uploads.Photos(1)
    old = time.time() - 2 * uploads.UPLOAD_MAX_AGE
    kept = photos.folder / "trained-abc"
    kept.mkdir()
    files = {"kept": kept / "my-face-model.zip", "zip": photos.folder / "h1" / "faces.zip",
             "photo": photos.folder / "h2" / "face.jpg"}
    for path in files.values():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (old, old))
    photos.keep(kept)
    photos.sweep()
    assert files["kept"].exists() and files["zip"].exists() and not files["photo"].exists()
    ancient = time.time() - 2 * uploads.ZIP_MAX_AGE
    os.utime(files["zip"], (ancient, ancient))
    os.utime(files["kept"], (ancient, ancient))
    photos.sweep()
    assert not files["zip"].exists() and files["kept"].exists()
    os.close(upload_folder._claimed.pop(photos.folder))  # this test's folder only: the app fixtures keep theirs
