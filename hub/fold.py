"""Batch norms folded into the convolutions before them, for serving: the same outputs, less time."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

TOLERANCE = 1e-4  # of the outputs' scale: folding only reorders float arithmetic


def fold_batch_norms(net: nn.Module, input_size: int) -> nn.Module:
    """`net` (in eval mode) with each batch norm that directly follows a convolution merged into
    its weights; timm's BatchNormAct2d keeps its activation. A net whose outputs move by more than
    rounding (a norm that was not the convolution's own, say) is returned unchanged."""
    pairs = _pairs(net)
    if not pairs:  # nothing to fold (a ViT, a session's head on the shared backbone): no copy made
        return net
    folded = copy.deepcopy(net)
    for parent_name, conv_name, norm_name in pairs:
        parent = folded.get_submodule(parent_name)
        norm = getattr(parent, norm_name)
        setattr(parent, conv_name, fuse_conv_bn_eval(getattr(parent, conv_name), norm))
        # BatchNormAct2d = norm, dropout, activation: what is left after the norm
        rest = [m for m in (getattr(norm, "drop", None), getattr(norm, "act", None)) if m is not None]
        setattr(parent, norm_name, nn.Sequential(*rest) if rest else nn.Identity())
    probe = torch.randn(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    probe = probe.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        before, after = net(probe).float(), folded(probe).float()
    if (before - after).abs().max() > TOLERANCE * max(1.0, before.abs().max().item()):
        return net
    return folded


def _pairs(net: nn.Module) -> list[tuple[str, str, str]]:
    """(parent, convolution, norm) names of each norm declared right after a convolution of its width.
    Declaration order is what timm's convolution blocks run them in; the caller checks the outputs."""
    pairs = []
    for parent_name, parent in net.named_modules():
        previous = None
        for name, child in parent.named_children():
            if isinstance(child, nn.Identity):  # timm's unused slots (aa, se, drop) sit between conv and norm
                continue
            if (isinstance(child, nn.BatchNorm2d) and previous is not None and child.track_running_stats
                    and previous[1].out_channels == child.num_features):
                pairs.append((parent_name, previous[0], name))
                previous = None
                continue
            previous = (name, child) if isinstance(child, nn.Conv2d) else None
    return pairs
