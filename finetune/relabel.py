"""Data labelled in other words than the model (CK+'s anger/happiness/sadness against angry/happy/sad):
class names mapped onto the model's, rows of classes the model does not know dropped and counted."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class Relabelled:
    """What `to_model_labels` did, for the printed notes and metrics.json."""
    mapped: dict[str, str] = field(default_factory=dict)     # data class -> model class, where they differ
    dropped: dict[str, int] = field(default_factory=dict)    # data class the model lacks -> rows dropped
    unused: tuple[str, ...] = ()                             # --label-map names not among the data's classes

    def notes(self) -> list[str]:
        lines = []
        if self.mapped:
            lines.append("[labels] " + ", ".join(f"{a} -> {b}" for a, b in self.mapped.items()))
        if self.unused:
            lines.append(f"[labels] --label-map names class(es) the data does not have: {', '.join(self.unused)}")
        if self.dropped:
            lines.append(f"[labels] dropped {sum(self.dropped.values())} face(s) of class(es) the model does not "
                         "know: " + ", ".join(f"{name} ({n})" for name, n in self.dropped.items())
                         + " (map them with --label-map DATA=MODEL)")
        return lines

    def as_json(self) -> dict:
        return {"mapped": dict(self.mapped), "dropped": dict(self.dropped),
                "dropped_rows": sum(self.dropped.values()), "unused_map_entries": list(self.unused)}


def parse_label_map(pairs: list[str] | None) -> dict[str, str]:
    """`anger=angry sadness=sad` as {data class: model class}."""
    mapping = {}
    for pair in pairs or []:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise DataError(f"--label-map: expected DATA=MODEL pairs such as anger=angry, got {pair!r}")
        mapping[source.strip()] = target.strip()
    return mapping


def to_model_labels(split, data_labels: list[str], model_labels: list[str],
                    mapping: dict[str, str] | None = None):
    """`split` (label ids in `data_labels` order) with label ids in `model_labels` order, after renaming
    the data's classes by `mapping`; rows of classes the model lacks are dropped. Returns (split, Relabelled)."""
    from datasets import ClassLabel

    mapping = dict(mapping or {})
    wrong = sorted({target for target in mapping.values() if target not in model_labels})
    if wrong:
        raise DataError(f"--label-map: the model has no class {', '.join(wrong)} (its classes: "
                        f"{', '.join(model_labels)})")
    names = [mapping.get(name, name) for name in data_labels]
    remap = np.array([model_labels.index(n) if n in model_labels else -1 for n in names], dtype=np.int64)
    ids = np.asarray(split["label"], dtype=np.int64)
    counts = np.bincount(ids, minlength=len(data_labels)) if len(ids) else np.zeros(len(data_labels), int)
    relabelled = Relabelled(
        mapped={a: b for a, b in zip(data_labels, names) if a != b},
        dropped={a: int(counts[i]) for i, a in enumerate(data_labels) if remap[i] < 0 and counts[i]},
        unused=tuple(sorted(set(mapping) - set(data_labels))))
    if list(data_labels) == list(model_labels) and not relabelled.mapped:
        return split, relabelled  # the model's own classes in its order: nothing to rewrite
    if relabelled.dropped:
        split = split.filter(lambda b: [remap[v] >= 0 for v in b["label"]], batched=True, desc="unknown classes")
    if len(split) == 0:
        raise DataError(f"none of the data's classes ({', '.join(data_labels)}) is one of the model's "
                        f"({', '.join(model_labels)}); map them with --label-map DATA=MODEL, e.g. "
                        f"--label-map {data_labels[0]}={model_labels[0]}")
    features = split.features.copy()
    features["label"] = ClassLabel(names=list(model_labels))
    split = split.map(lambda b: {"label": [int(remap[v]) for v in b["label"]]}, batched=True, features=features,
                      desc="model's label ids")
    return split, relabelled
