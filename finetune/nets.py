"""The network a run trains: created from timm or from a model folder of ours, and which parts train."""
from __future__ import annotations

from pathlib import Path

import torch

from .settings import InitModel, Settings


def create_net(settings: Settings, num_outputs: int):
    import timm

    cfg, size = settings.config, settings.input_size
    kwargs = dict(num_classes=num_outputs, drop_path_rate=cfg.drop_path, **cfg.model_kwargs)
    init = settings.init
    if init:  # a model of ours: same architecture, new head when the classes differ
        if size != init.input_size:
            net = _resized_from(init, size, kwargs)
            if net is not None:
                return net
        net = timm.create_model(f"local-dir:{init.folder}", pretrained=True)
        if net.num_classes != num_outputs:
            net.reset_classifier(num_outputs)
        return net
    try:
        return timm.create_model(settings.model, pretrained=settings.pretrained, img_size=size, **kwargs)
    except TypeError:  # backbones without an img_size argument (convnets) adapt by themselves
        return timm.create_model(settings.model, pretrained=settings.pretrained, **kwargs)


def _resized_from(init: InitModel, size: int, kwargs: dict):
    """Our model at another input size: every weight whose shape does not depend on the size (all
    but position-dependent tables, such as LeViT's attention biases) starts from the checkpoint.
    None for architectures without a fixed size."""
    import timm
    from safetensors.torch import load_file

    from hub.models import WEIGHTS_FILE

    model_args = {k: v for k, v in init.model_args.items() if k != "img_size"}
    try:
        net = timm.create_model(init.architecture, pretrained=False, img_size=size, **{**model_args, **kwargs})
    except TypeError:  # a convnet takes any input size: the checkpoint loads as it is
        return None
    own = net.state_dict()
    saved = load_file(str(Path(init.folder) / WEIGHTS_FILE))
    fits = {k: v.to(own[k].dtype) for k, v in saved.items() if k in own and v.shape == own[k].shape}
    net.load_state_dict(fits, strict=False)
    print(f"[init] {init.folder} at {size}px: {len(fits)} of {len(own)} tensors loaded; new: "
          f"{sorted({k.rsplit('.', 1)[-1] for k in own if k not in fits})}")
    return net


def heads(net) -> tuple[torch.nn.Module, ...]:
    found = net.get_classifier()  # a tuple for distilled models (LeViT, DeiT): head and head_dist
    return found if isinstance(found, tuple) else (found,)


def start_at(net, years: float) -> None:
    """A new age head starts at the mean age, so that early steps learn faces, not the offset."""
    with torch.no_grad():
        for head in heads(net):
            linear = getattr(head, "linear", head)  # LeViT's NormLinear keeps its bias in .linear
            linear.bias.fill_(years)


def train_mode(model, frozen_bn: bool) -> None:
    model.train()
    if frozen_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def backbone_stages(net) -> list[torch.nn.Module]:
    for name in ("blocks", "stages", "layers"):
        stages = getattr(net, name, None)
        if isinstance(stages, torch.nn.Sequential) or isinstance(stages, torch.nn.ModuleList):
            return list(stages)
    return []


def head_parameter_ids(net) -> set[int]:
    return {id(p) for head in heads(net) for p in head.parameters()}


def set_trainable(net, head_only: bool, last_blocks: int) -> None:
    """Seed study's two steps: the head on a frozen backbone, then the last N blocks (-1: all)."""
    head_params = head_parameter_ids(net)
    for p in net.parameters():
        p.requires_grad = not head_only or id(p) in head_params
    if head_only or last_blocks < 0:
        return
    stages = backbone_stages(net)
    for p in net.parameters():
        p.requires_grad = id(p) in head_params
    for stage in stages[len(stages) - last_blocks:]:
        for p in stage.parameters():
            p.requires_grad = True
    for name, module in net.named_children():  # norms after the blocks train with them
        if "norm" in name:
            for p in module.parameters():
                p.requires_grad = True
