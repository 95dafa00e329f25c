"""Batch norms folded into convolutions for serving: the outputs stay, the norms go, and a net the
fold would change is served as it was."""
import timm
import torch
from torch import nn

from hub.fold import fold_batch_norms


def _with_moved_statistics(net: nn.Module) -> nn.Module:
    """Norms that do something (a fresh net's are the identity, which any fold would pass)."""
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return net.eval()


def _norms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_a_mobilenet_keeps_its_outputs_without_its_norms():
    net = _with_moved_statistics(timm.create_model("mobilenetv1_100", num_classes=2, pretrained=False))
    images = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        expected = net(images)
    folded = fold_batch_norms(net, input_size=64)
    assert _norms(net) > 20 and _norms(folded) == 0
    with torch.inference_mode():
        assert torch.allclose(folded(images), expected, atol=1e-4, rtol=1e-4)
        assert net(images).equal(expected)  # the original is left as it was


class _NormFirst(nn.Module):
    """A convolution declared before a norm that runs on the input, not on the convolution's output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)
        self.num_classes = 3

    def forward(self, images):
        return self.conv(self.norm(images)).mean((2, 3))


def test_a_net_the_fold_would_change_is_served_unchanged():
    net = _with_moved_statistics(_NormFirst())
    assert fold_batch_norms(net, input_size=16) is net


def test_a_net_without_norms_is_the_same_object():
    net = timm.create_model("test_vit", num_classes=2, pretrained=False).eval()
    assert fold_batch_norms(net, input_size=net.pretrained_cfg["input_size"][-1]) is net
