"""The model card (README.md) written beside every trained model: Hub metadata + what the model is for.

The weights inherit the terms of their training data: the manifest's dataset brings its licence
(`licences:` in spaces.yaml); other data (the user's own folder) gets `license_name: unknown-training-data`,
and the card says that the terms follow the images, which only their owner knows.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from hub.config import DataLicence
from hub.locations import hub_ref

from .card_tables import evaluation, groups
from .settings import Settings, shown

PROJECT = "face-attribute-hub"


def data_terms(settings: Settings) -> DataLicence:
    """The licence of the data a model was trained on: the manifest's, or unknown for other data."""
    if settings.data.licence:
        return settings.data.licence
    name = Path(settings.data.source).name or "user-supplied data"
    return DataLicence(name=name, license_name="unknown-training-data", terms=(
        "This model was trained on images supplied by its user, whose licence is unknown here. The weights "
        "inherit whatever terms those images carry (and the rights of the people shown): check them before "
        "sharing or using the model. Until then, treat it as **research use only**."))


# --- metadata ---------------------------------------------------------------------------------------

def card_data(settings: Settings, metrics: dict, repo_id: str | None, terms: DataLicence):
    from huggingface_hub import EvalResult, ModelCardData

    task = settings.task
    test = metrics["test"]
    hub_dataset = settings.data.hub_dataset
    dataset_type = hub_dataset or "custom"
    common = dict(task_type="image-classification", dataset_type=dataset_type, dataset_name=terms.name,
                  dataset_split="test", task_name=f"{task.title} ({task.kind})")
    if task.is_classification:
        pairs = [("accuracy", "Accuracy", test["accuracy"]), ("f1", "Macro F1", test["macro_f1"]),
                 ("ece", "Expected calibration error (15 bins)", test["ece"])]
    else:
        pairs = [("mae", "MAE (years)", test["mae"]), ("rmse", "RMSE (years)", test["rmse"]),
                 ("coverage", "Age interval coverage", test["interval"]["coverage"])]
    results = [EvalResult(metric_type=kind, metric_name=name, metric_value=round(float(value), 4), **common)
               for kind, name, value in pairs if value is not None and value == value]
    tags = ["timm", "vision", "face", "face-attributes", PROJECT, task.name,
            "regression" if not task.is_classification else "image-classification"]
    return ModelCardData(
        library_name="timm", pipeline_tag="image-classification", license="other",
        license_name=terms.license_name, license_link=terms.license_link,
        datasets=[hub_dataset] if hub_dataset else None, tags=tags,
        metrics=[kind for kind, _, _ in pairs], model_name=repo_id or f"{PROJECT}-{task.name}",
        eval_results=results or None, base_model=base_model(settings))


def base_model(settings: Settings) -> str | None:
    """The Hub repo of the ImageNet weights fine-tuned from (timm/<name>.<tag>), when there were some."""
    model = settings.model
    ref = hub_ref(model)
    if ref:
        return ref.repo_id
    if not settings.pretrained or ":" in model:
        return None
    try:
        import timm
        pretrained = timm.models.get_pretrained_cfg(model)
    except Exception:  # noqa: BLE001 - an unknown name just leaves the field out
        return None
    return getattr(pretrained, "hf_hub_id", None) if pretrained else None


# --- body --------------------------------------------------------------------------------------------

def _what_it_predicts(settings: Settings, metrics: dict) -> str:
    task, crop = settings.task, settings.data.crop
    test = metrics["test"]
    framing = f"Input: one square face crop ({settings.input_size}px" + \
        (", gray" if crop.grayscale else "") + \
        f", face box {crop.margin:+.0%} on each side" + \
        (f", centre moved down {crop.shift:.0%} of the box" if crop.shift else "") + \
        ("; outputs averaged with the mirrored crop's" if metrics.get("test_time_flip") else "") + \
        "), as cut by the app's MTCNN face detector."
    if task.is_classification:
        labels = ", ".join(f"`{name}`" for name in metrics["labels"])
        return (f"One of {len(metrics['labels'])} classes: {labels}, with probabilities calibrated by "
                f"temperature scaling (T = {test['temperature']:.3f}, fitted on the validation split and "
                f"stored as `temperature` in config.json). The app reads a face as *uncertain* when the top "
                f"probability is below {task.uncertain_below}.\n\n{framing}")
    interval = test["interval"]
    return (f"Apparent age in years (one regression output), with an interval [prediction "
            f"{interval['low']:+.1f}, prediction {interval['high']:+.1f}] years taken from the validation "
            f"residuals (meant to cover {interval['coverage_nominal']:.0%}; it covered "
            f"{interval['coverage']:.0%} of the test faces). Stored as `age_interval` in config.json.\n\n{framing}")


def _start(settings: Settings) -> str:
    start = f"continued from our model `{settings.init.folder}`" if settings.init else \
        "ImageNet-pretrained" if settings.pretrained else "random init"
    teacher, cfg = settings.teacher, settings.config
    if teacher:  # the teacher's share of the loss; see finetune/distill.py
        start += (f"; distilled from our model `{shown(teacher.folder)}`, a {teacher.architecture} at "
                  f"{teacher.input_size}px, with weight {cfg.distill_alpha} on the teacher term and temperature "
                  f"{cfg.distill_temperature}")
    return start


def render(settings: Settings, metrics: dict, data, repo_id: str | None = None) -> str:
    from huggingface_hub import ModelCard

    task, cfg = settings.task, settings.as_config()
    terms = data_terms(settings)
    meta = card_data(settings, metrics, repo_id, terms)
    repo = repo_id or f"<your-user>/{PROJECT}-{task.name}"
    sizes = metrics.get("data", {}).get("sizes", {})
    skipped = getattr(data, "skipped", {}) or {}
    no_face = len(getattr(data, "no_face", []) or [])
    training = metrics.get("training", {})
    config_yaml = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False).strip()
    hub_dataset = settings.data.hub_dataset
    procedure = training.get("procedure") or (  # head-only models describe themselves
        f"Backbone `{cfg.model}` ({_start(settings)}), fine-tuned\n{cfg.epochs} epoch(s) at most with early stopping "
        f"on the validation {'accuracy' if task.is_classification else 'MAE'}; best epoch "
        f"{training.get('best_epoch', '?')}; {training.get('train_speed_img_per_s', '?')}\nimages/s in the last epoch.")
    if settings.init and settings.init.pretrained_from:
        procedure += f" Pretrained weights: {settings.init.pretrained_from}"
    caveat = task.caveat or "See the limitations below."
    load_lines = [
        "import timm, torch",
        "from PIL import Image",
        "",
        f'net = timm.create_model("hf-hub:{repo}", pretrained=True).eval()',
        "config = timm.data.resolve_data_config(model=net)",
        "transform = timm.data.create_transform(**config)",
        'face = Image.open("face.jpg").convert("RGB")  # a square face crop',
        "with torch.inference_mode():",
        "    out = net(transform(face).unsqueeze(0))",
    ]
    if task.is_classification:
        load_lines += [f"probs = (out / {metrics['test']['temperature']:.4f}).softmax(-1)  # calibrated",
                       f"labels = {metrics['labels']!r}",
                       "print(labels[int(probs.argmax())], float(probs.max()))"]
    else:
        load_lines += ["years = max(0.0, float(out[0, 0]))", "print(f'{years:.0f} years')"]
    body = f"""
# {task.title}: {cfg.model} fine-tuned on {terms.name}

> {caveat}

Part of the Face Attribute Hub: find every face in a photo, then predict its attributes. Trained with
`python -m finetune --task {task.name}` (timm, PyTorch).

## What it predicts

{_what_it_predicts(settings, metrics)}

## Intended use

- Demonstrations and teaching: what a face-attribute model learns, and where it fails.
- Research on the behaviour, calibration and biases of such models.
- As the `{task.name}` model of the Face Attribute Hub app.

## Out of scope

- Any decision about a person: hiring, admission, credit, insurance, access, policing, surveillance.
- Inferring what a prediction cannot carry: how someone identifies, how they feel, their real age or
  their studies.
- Photos of people who did not agree to be analysed; children's photos without their guardians' consent.
- Uses the training data's licence forbids (below).

## Limitations and biases

{caveat}

{groups(task, metrics)}

The data's own labels are imperfect (annotated from file names, crowd-sourced or self-collected) and the
model repeats their errors and their categories. Faces unlike the training data (lighting, pose, age
groups, skin tones, make-up, occlusions, image quality) get worse and less reliable predictions.

## Training data

**{terms.name}**{f" ([{hub_dataset}](https://huggingface.co/datasets/{hub_dataset}))" if hub_dataset else ""},
source `{cfg.data}`. Split with a fixed seed ({cfg.seed}) into train / validation / test:
{", ".join(f"{name} {n}" for name, n in sizes.items()) or "see metrics.json"} faces.
Skipped: {skipped.get("unreadable", 0)} unreadable file(s), {skipped.get("no_face", 0)} image(s) without a
detected face (listed in `no_face.log`; {no_face} in total).

### Licence

{terms.terms}{f" Dataset terms: {terms.license_link}." if terms.license_link else ""}

## Training procedure

{procedure}
The resolved configuration (`train_config.yaml`; rerun it with `python -m finetune --config train_config.yaml`):

```yaml
{config_yaml}
```

## Evaluation

{evaluation(task, metrics)}

Measure it on other data with `python -m finetune evaluate <this folder> --data <data>`.

## How to use

With timm:

```python
{chr(10).join(load_lines)}
```

In the Face Attribute Hub app, list it first in `spaces.yaml`:
`tasks.{task.name}.models: [hf-hub:{repo}]`; the app detects the faces, crops them as in training and
{"applies the stored temperature" if task.is_classification else "adds the stored age interval"}.
{"" if task.is_classification else "(The single output is years, not a class score: use timm as above rather than the transformers image-classification pipeline, which would squash it.)"}
"""
    card = ModelCard(f"---\n{meta.to_yaml()}\n---\n{body}")
    return str(card)


def write_model_card(output, settings: Settings, metrics: dict, data) -> Path:
    """README.md in `output`; parses with `huggingface_hub.ModelCard` (checked on the way out)."""
    from huggingface_hub import ModelCard

    text = render(settings, metrics, data, repo_id=settings.config.push_to_hub)
    ModelCard(text)  # raises on malformed metadata
    path = Path(output) / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
