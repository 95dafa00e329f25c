"""spaces.yaml parsing: the real manifest loads, and every kind of mistake names its key."""
import copy

import pytest
import yaml

from hub.config import DEFAULT_MANIFEST, ManifestError, load_manifest, parse_manifest, read_manifest


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(DEFAULT_MANIFEST.read_text())


def broken(raw, edit):
    raw = copy.deepcopy(raw)
    edit(raw)
    return raw


def test_project_manifest(raw):
    manifest = parse_manifest(raw)
    assert list(manifest.tasks) == ["gender", "age", "mood", "field"]
    age, mood = manifest.task("age"), manifest.task("mood")
    assert age.kind == "regression" and not age.is_classification
    assert age.band_for(0) == "0-2" and age.band_for(35.5) == "30-39" and age.band_for(101) == "70+"
    assert mood.labels[3] == "happy" and mood.grayscale
    # serving crops are framed like each training set (measured by `python -m finetune framing`)
    assert age.crop_margin < 0 and age.crop_shift >= 0 and manifest.task("field").crop_shift == 0.0
    assert all(task.caveat for task in manifest.tasks.values())
    assert manifest.detector.min_confidence == 0.9


def test_locations_resolve_against_the_manifest(tmp_path, raw):
    path = tmp_path / "spaces.yaml"
    path.write_text(yaml.safe_dump(raw))
    manifest = read_manifest(path)
    assert manifest.resolve("models/gender") == str(tmp_path / "models" / "gender")
    assert manifest.resolve("hf-hub:org/name") == "hf-hub:org/name"
    assert load_manifest(path) is load_manifest(str(path))  # parsed once


@pytest.mark.parametrize("edit, key", [
    (lambda r: r["tasks"]["gender"].pop("kind"), "tasks.gender.kind: missing"),
    (lambda r: r["tasks"]["age"].update(kind="ranking"), "tasks.age.kind: expected one of"),
    (lambda r: r["tasks"]["gender"].update(input_size="64"), "tasks.gender.input_size: expected int"),
    (lambda r: r["tasks"]["mood"].update(labels=[]), "tasks.mood.labels: must not be empty"),
    (lambda r: r["tasks"]["mood"].update(labels="happy, sad"), "tasks.mood.labels: expected list"),
    (lambda r: r["tasks"]["mood"].update(labels=["happy", 3]), "tasks.mood.labels[1]: expected str"),
    (lambda r: r["tasks"]["mood"].update(labels=["happy", "happy"]), "tasks.mood.labels: labels must be unique"),
    (lambda r: r["tasks"]["field"].update(labels=["cs"]), "tasks.field.labels: a classification task"),
    (lambda r: r["tasks"]["gender"].update(uncertain_below=2), "tasks.gender.uncertain_below: must lie"),
    (lambda r: r["tasks"]["age"]["bands"][1].update(high=1), "tasks.age.bands[1].high"),
    (lambda r: r["tasks"]["gender"].update(dataset={"image_column": "x"}), "tasks.gender.dataset: needs"),
    (lambda r: r["detector"].update(max_sides=3), "detector.max_sides: unknown key"),
    (lambda r: r["detector"].update(margin="wide"), "detector.margin: expected float"),
    (lambda r: r.update(tasks={}), "manifest.tasks: must name at least one task"),
    (lambda r: r["tasks"]["age"]["dataset"].update(licence="cc0"), "tasks.age.dataset.licence: 'cc0' is not"),
    (lambda r: r["licences"]["utkface"].pop("terms"), "licences.utkface.terms: missing"),
])
def test_mistakes_name_the_key(raw, edit, key):
    with pytest.raises(ManifestError) as err:
        parse_manifest(broken(raw, edit))
    assert str(err.value).startswith(key)


def test_unreadable_files(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        read_manifest(bad)


def test_licences_are_written_once_and_shared(raw):
    manifest = parse_manifest(raw)
    gender, age, mood = (manifest.task(name).dataset.licence for name in ("gender", "age", "mood"))
    assert gender is age and gender.name == "UTKFace" and "non-commercial" in gender.terms
    assert mood.license_name == "fer2013-research" and manifest.task("field").dataset.licence is None
    assert manifest.age_bands == manifest.task("age").bands and manifest.age_bands[-1].name == "70+"


@pytest.mark.parametrize("location, repo, revision", [
    ("hf-hub:org/name", "org/name", None), ("hf-hub:org/name@v1.2", "org/name", "v1.2"),
    ("models/age", None, None), ("levit_128s", None, None)])
def test_hub_locations_are_parsed_in_one_place(location, repo, revision):
    from hub.locations import hub_ref

    ref = hub_ref(location)
    assert (ref.repo_id, ref.revision) == (repo, revision) if repo else ref is None
    if ref:
        assert ref.location == location
