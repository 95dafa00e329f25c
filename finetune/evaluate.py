"""`python -m finetune evaluate`: any model folder of ours measured on any data, with the same metrics and
figures as at the end of training.

    python -m finetune evaluate models/age --data ../shared/data/utkface [--split test|all] [--out DIR]
    python -m finetune evaluate models/mood --data ck-plus/ --split all --label-map anger=angry sadness=sad

The data settings come from the model's train_config.yaml (same seed and fractions, so the same held-out
split), overridden by the flags, and are resolved by the same function as in training. Data from elsewhere
may name its classes otherwise (--label-map), have classes the model lacks (their faces are dropped, with a
note) and lack some of the model's (metrics over the classes present, named in metrics.json).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from hub.config import load_manifest

from .calibration import INTERVAL_COVERAGE
from .config import ConfigError, from_yaml, make_config

TRAIN_CONFIG = "train_config.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune evaluate",
                                     description="Measure a model folder on data: metrics.json and figures.")
    parser.add_argument("model_dir", help="a model folder written by `python -m finetune`")
    parser.add_argument("--data", help="Hub id, parquet/arrow, image folder or index.csv folder; default: "
                        f"the data the model was trained on ({TRAIN_CONFIG}), else the manifest's")
    parser.add_argument("--task", help="default: config.json's task")
    parser.add_argument("--split", choices=["test", "all"], default="test",
                        help="test: the held-out split (same seed and fractions as training); all: every row")
    parser.add_argument("--label-map", nargs="*", metavar="DATA=MODEL", default=[],
                        help="the data's class names as the model's, e.g. anger=angry sadness=sad; the faces "
                        "of classes the model does not know are dropped")
    parser.add_argument("--out", help="default: MODEL_DIR/eval-<data name>")
    parser.add_argument("--manifest")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-column")
    parser.add_argument("--label-column")
    parser.add_argument("--detect-faces", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--max-samples", type=int, help="cap per split, for quick runs")
    parser.add_argument("--cache-dir")
    parser.add_argument("--workers", type=int, default=0)
    return parser


def _data_name(source: str) -> str:
    name = Path(source.rstrip("/")).name or "data"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.utils.data import DataLoader

    from hub.models import AttributeModel, read_model_config

    from .data import DataError, load_task_data
    from .loaders import TorchFaces, run_inference
    from .measure import measure_split
    from .metrics import headline, summary_lines, to_json
    from .relabel import parse_label_map, to_model_labels
    from .settings import resolve_data

    args = build_parser().parse_args(argv)
    folder = Path(args.model_dir)
    config = read_model_config(folder)
    manifest = load_manifest(args.manifest)
    name = args.task or config.get("task")
    if name not in manifest.tasks:
        raise SystemExit(f"error: which task is {folder}? config.json says {config.get('task')!r}; "
                         f"pass --task (one of {sorted(manifest.tasks)})")
    task = manifest.task(name)
    if task.is_classification and config.get("label_names"):  # user data may have its own classes
        task = dataclasses.replace(task, labels=tuple(config["label_names"]))
    flags = {"task": name, "data": args.data, "image_column": args.image_column, "label_column": args.label_column,
             "detect_faces": args.detect_faces, "max_samples": args.max_samples, "cache_dir": args.cache_dir}
    try:
        trained = from_yaml(folder / TRAIN_CONFIG, flags) if (folder / TRAIN_CONFIG).is_file() else \
            make_config({k: v for k, v in flags.items() if v is not None})
    except ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    model = AttributeModel.load(task, str(folder))
    settings = resolve_data(trained, manifest, size=model.input_size, task=task)
    mapping = parse_label_map(args.label_map)
    if mapping and not task.is_classification:
        raise DataError(f"--label-map: {task.name} is a regression task, it has no classes to map")
    data = load_task_data(settings, holdout=args.split == "test")
    split = data.splits[args.split]
    relabelled = None
    if task.is_classification:
        split, relabelled = to_model_labels(split, data.labels, model.labels, mapping)

    loader = DataLoader(TorchFaces(split, model.transform, not task.is_classification), batch_size=args.batch_size,
                        shuffle=False, num_workers=args.workers)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    outputs, targets = run_inference(model.net.to(device), loader, device, model.flip)
    source = settings.shown_source
    out = Path(args.out) if args.out else folder / f"eval-{_data_name(source)}"
    result = measure_split(
        outputs, targets, split, task, model.labels, data.groups, out, temperature=model.temperature,
        interval={"low": model.interval[0], "high": model.interval[1],
                  "coverage": (config.get("age_interval") or {}).get("coverage", INTERVAL_COVERAGE)},
        age_bands=manifest.age_bands)
    metrics = {"task": task.name, "kind": task.kind, "labels": model.labels, "model": str(folder),
               "split": args.split, **result,
               "data": {"source": source, "rows": len(split), "skipped": dict(data.skipped),
                        "group_columns": list(data.groups)}}
    if relabelled is not None:
        metrics["data"]["labels"] = {"data": list(data.labels), **relabelled.as_json()}
    metrics["headline"] = headline(metrics)
    (out / "metrics.json").write_text(to_json(metrics))
    (out / "no_face.log").write_text("".join(f"{row}\n" for row in data.no_face))
    print(f"[eval] {folder} on {source} ({args.split}, {len(split)} faces; skipped {data.skipped})")
    for line in relabelled.notes() if relabelled else []:
        print(line)
    for line in summary_lines(metrics, args.split):
        print(line)
    print(f"[saved] {out}: metrics.json, {len(result['figures'])} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
