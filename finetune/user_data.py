"""The data of the app's "Train your own" tab in finetune's form: a checked upload (hub.train_data) or a
Hub dataset, as the DatasetDict that `finetune.data.load_task_data` takes instead of reading a source."""
from __future__ import annotations

from datasets import Dataset, DatasetDict, Features, Image as ImageFeature, Value

from hub.train_data import Upload, UploadRefused

from . import hub_datasets


def as_dataset(upload: Upload) -> DatasetDict:
    """The photos as an in-memory DatasetDict (image paths, label names) per split: nothing is written to
    the datasets cache, so nothing about the upload outlives its folder."""
    features = Features({"image": ImageFeature(decode=False), "label": Value("string")})
    splits = {}
    for split in ("train", "validation", "test"):
        rows = [p for p in upload.photos if (p.split or "train") == split]
        if rows:
            splits[split] = Dataset.from_dict({"image": [{"path": str(p.path), "bytes": None} for p in rows],
                                               "label": [p.label for p in rows]}, features=features)
    return DatasetDict(splits)


def hub_dataset(dataset_id: str, max_images: int, seed: int = 0) -> DatasetDict:
    """A Hub dataset by id (never a local path: finetune.hub_datasets.is_hub_id), at most `max_images` rows in
    all, shuffled first."""
    from huggingface_hub import constants

    dataset_id = (dataset_id or "").strip()
    if not hub_datasets.is_hub_id(dataset_id):
        raise UploadRefused(f"'{dataset_id}' is not a Hub dataset id (it looks like owner/name).")
    try:
        loaded = hub_datasets.load(dataset_id)
    except Exception:  # noqa: BLE001 - offline, missing, gated, malformed: one plain message
        raise UploadRefused(f"Could not load the Hub dataset '{dataset_id}': " + (
            "this server cannot reach the Hugging Face Hub." if constants.HF_HUB_OFFLINE else
            "check the name, and that it is public and has image and label columns.")) from None
    total = sum(len(part) for part in loaded.values())
    if total <= max_images:
        return loaded
    return DatasetDict({name: part.shuffle(seed=seed).select(range(max(1, max_images * len(part) // total)))
                        for name, part in loaded.items()})
