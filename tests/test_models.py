"""Model registry: every network builds for grey and colour input, widths are honoured,
architectures have the depth their name promises, unknown names fail with the list."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ip.models import available_models, get_model, register_model

CIFAR_MODELS = ["resnet20", "resnet32", "resnet56", "vgg11", "vgg16", "vgg19"]
# 3x3 convs per network: 6n+1 for CIFAR ResNets (stem + 2 per block), the conv count for VGG
THREE_BY_THREE = {"resnet20": 19, "resnet32": 31, "resnet56": 55, "vgg11": 8, "vgg16": 13, "vgg19": 16}



def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_registry_lists_the_study_models():
    assert set(CIFAR_MODELS + ["resnet18", "resnet50"]) <= set(available_models())
    assert available_models() == sorted(available_models())


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_cifar_models_build_and_give_logits(name, in_channels):
    torch.manual_seed(0)
    model = get_model(name, num_classes=7, in_channels=in_channels, width=4).eval()
    convs = _convs(model)
    assert convs[0].in_channels == in_channels
    assert convs[0].out_channels == 4
    assert sum(c.kernel_size == (3, 3) for c in convs) == THREE_BY_THREE[name]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].out_features == 7
    x = torch.randn(2, in_channels, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert (out[0] - out[1]).abs().max() > 0  # depends on the input
    # grey 28x28 (Fashion-MNIST) works too: pooling adapts to the spatial size
    with torch.no_grad():
        assert model(torch.randn(1, in_channels, 28, 28)).shape == (1, 7)


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_width_scales_every_layer(name):
    narrow = get_model(name, in_channels=3, width=4)
    wide = get_model(name, in_channels=3, width=8)
    for a, b in zip(_convs(narrow), _convs(wide)):
        assert b.out_channels == 2 * a.out_channels
    # conv weights are quadratic in width except the stem (its input is the image)
    conv_a = sum(c.weight.numel() for c in _convs(narrow)[1:])
    conv_b = sum(c.weight.numel() for c in _convs(wide)[1:])
    assert conv_b == 4 * conv_a


def test_resnet20_default_has_the_known_parameter_count():
    # conv1 432 + BN 32; stage 1: 6 x 2304 + 6 BN x 32; stage 2: 4608 + 5 x 9216 + 6 BN x 64,
    # 1x1 shortcut 512 + BN 64; stage 3: 18432 + 5 x 36864 + 6 BN x 128, shortcut 2048 + BN 128; fc 650
    expected = (432 + 32 + 6 * 2304 + 6 * 32 + 4608 + 5 * 9216 + 6 * 64 + 512 + 64
                + 18432 + 5 * 36864 + 6 * 128 + 2048 + 128 + 650)
    model = get_model("resnet20")
    assert sum(p.numel() for p in model.parameters()) == expected == 272474


def test_cifar_resnet_downsamples_twice_with_1x1_shortcuts():
    model = get_model("resnet20", in_channels=1, width=4)
    strided = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert strided == ["layer2.0.conv1", "layer2.0.shortcut.0", "layer3.0.conv1", "layer3.0.shortcut.0"]
    shortcuts = [m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "shortcut" in n]
    assert all(m.kernel_size == (1, 1) for m in shortcuts)


def test_invalid_cifar_resnet_depth_raises():
    from ip.models.cifar_resnet import CifarResNet
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(21)


def test_models_are_reproducible_from_the_seed():
    torch.manual_seed(3)
    a = get_model("vgg11", width=4)
    torch.manual_seed(3)
    b = get_model("vgg11", width=4)
    c = get_model("vgg11", width=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["features.0.weight"], sc["features.0.weight"])


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnets_build(name, in_channels):
    torch.manual_seed(0)
    model = get_model(name, num_classes=5, in_channels=in_channels).eval()
    assert model.conv1.in_channels == in_channels and model.conv1.kernel_size == (7, 7)
    assert model.fc.out_features == 5
    with torch.no_grad():
        assert model(torch.randn(1, in_channels, 32, 32)).shape == (1, 5)


def test_torchvision_resnet_rejects_other_widths():
    with pytest.raises(ValueError, match="width"):
        get_model("resnet18", width=32)


def test_unknown_model_lists_available_ones():
    with pytest.raises(ValueError) as info:
        get_model("resnet21")
    message = str(info.value)
    assert "resnet21" in message
    for name in available_models():
        assert name in message


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="twice"):
        register_model("resnet20")(lambda **_: nn.Identity())
