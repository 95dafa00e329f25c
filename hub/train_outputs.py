"""What a training hands back: the seed study's report as HTML (figures inline, so nothing of it is
written to Gradio's cache), the summary the API returns, and the download: the model folder plus a
spaces.yaml that serves it.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import zipfile
from pathlib import Path

import yaml

from .config import Manifest
from .models import read_model_config

MODEL_NAME = "my-face-model"
REPORT_FIGURES = (("confusion_matrix", "Confusion matrix (rows: real label)"),
                  ("class_distribution", "Class distribution, real vs predicted"),
                  ("confident_mistakes", "The most confident mistakes"),
                  ("ambiguous", "The most ambiguous faces"))


def download_zip(manifest: Manifest, model_dir: Path, labels: list[str], zip_path: Path) -> Path:
    """The model folder plus a spaces.yaml that serves it: unzip, then `python -m hub predict PHOTO
    --manifest spaces.yaml` (or the app with HUB_MANIFEST) uses it."""
    own = manifest.train_your_own
    task = manifest.task(own.task)
    config = read_model_config(model_dir)
    raw = {"detector": dataclasses.asdict(manifest.detector), "tasks": {task.name: {
        "title": task.title, "kind": "classification", "labels": list(labels),
        "backbone": config["architecture"], "input_size": own.input_size,
        "uncertain_below": task.uncertain_below, "dataset": {"path": "data"}, "models": [MODEL_NAME],
        "caveat": task.caveat}}}
    text = ("# Serve the model beside this file: python -m hub predict PHOTO --manifest spaces.yaml\n"
            + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("spaces.yaml", text)
        for path in sorted(model_dir.iterdir()):
            if path.is_file():
                archive.write(path, f"{MODEL_NAME}/{path.name}")
    return zip_path


def _figure_html(path: Path, caption: str, width: str = "100%") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure style="margin:0 0 1em 0;flex:1 1 {width};max-width:{width}"><figcaption><b>'
            f'{html.escape(caption)}</b></figcaption><img src="data:image/png;base64,{data}" '
            f'style="max-width:100%" alt="{html.escape(caption)}"></figure>')


def report_html(metrics: dict, folder: Path, no_face: list[str], notes: list[str], task_title: str) -> str:
    """The seed study's report: accuracies against the majority baseline, figures, faces, caveat."""
    from finetune.head_train import CAVEAT

    test, val, base = metrics["test"], metrics["validation"], metrics["baseline"]
    sizes, seconds = metrics["data"]["sizes"], metrics["training"]["seconds"]
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{row['true']}</td><td>{row['predicted']}</td>"
                   f"<td>{test['per_class'][name]['recall']:.0%}</td></tr>"
                   for name, row in test["class_distribution"].items())
    parts = [f"<h3>Your model: {html.escape(', '.join(metrics['labels']))}</h3>",
             f"<p><b>Test accuracy {test['accuracy']:.0%}</b> on {test['n']} faces it never saw; always answering "
             f"'{html.escape(base['majority_class'])}' would score {base['test']:.0%}.<br>"
             f"Validation accuracy {val['accuracy']:.0%} on {val['n']} faces (baseline {base['validation']:.0%}).<br>"
             f"Trained on {sizes['train']} faces (validation {sizes['validation']}, test {sizes['test']}) in "
             f"{seconds['total']:.0f} s. Small test sets give rough figures: a few faces more or less right "
             "move them by several points.</p>",
             f"<p><i>{html.escape(CAVEAT)}</i></p>",
             f"<table><tr><th>label</th><th>real (test)</th><th>predicted</th><th>found</th></tr>{rows}</table>"]
    if no_face:
        shown = ", ".join(html.escape(name) for name in no_face[:20])
        more = f" and {len(no_face) - 20} more" if len(no_face) > 20 else ""
        parts.append(f"<p>No face found in {len(no_face)} photo(s), left out: {shown}{more}.</p>")
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    figures = {key: (folder / metrics["figures"][key], caption) for key, caption in REPORT_FIGURES
               if key in metrics["figures"]}
    if test["accuracy"] == 1.0:  # an empty gallery says less than a sentence
        figures.pop("confident_mistakes", None)
        parts.append("<p>No mistakes among the test faces: with so few, that proves little.</p>")
    side_by_side = [key for key in ("confusion_matrix", "class_distribution") if key in figures]
    parts.append('<div style="display:flex;flex-wrap:wrap;gap:1em">' + "".join(
        _figure_html(*figures.pop(key), width="45%") for key in side_by_side) + "</div>")
    parts += [_figure_html(*figure) for figure in figures.values()]
    parts.append(f"<p>Your model now answers in the <b>{html.escape(task_title)}</b> and <b>All attributes</b> "
                 "tabs (and their API endpoints) for this session only. Download it to keep it: it is deleted "
                 "when you close this page.</p>")
    return "\n".join(parts)


def summary(metrics: dict, no_face: list[str]) -> dict:
    """What the API returns beside the report."""
    return {"labels": metrics["labels"], "test_accuracy": round(metrics["test"]["accuracy"], 4),
            "validation_accuracy": round(metrics["validation"]["accuracy"], 4),
            "majority_baseline": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics["baseline"].items()},
            "sizes": metrics["data"]["sizes"], "seconds": metrics["training"]["seconds"]["total"],
            "class_distribution": metrics["test"]["class_distribution"], "no_face": no_face}
