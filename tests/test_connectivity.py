"""Structural connectivity of pruned networks (STUDY_SPEC section 3, "Disconnected networks")."""
import pytest
import torch

from ip.connectivity import connectivity_report
from ip.interspace import to_interspace
from ip.masks import dense_masks, layer_name, prunable_parameters
from ip.models import get_model


def resnet20(representation):
    torch.manual_seed(0)
    net = get_model("resnet20", 10, 1, 4)
    if representation != "sp":
        net = to_interspace(net, fb_init=representation)
    return net


def emptied(model, layer_prefixes):
    """Dense masks except that every prunable layer under the given prefixes keeps nothing."""
    return {n: torch.zeros_like(m) if layer_name(n).startswith(layer_prefixes) else m
            for n, m in dense_masks(model).items()}


REPRESENTATIONS = ["sp", "spatial", "dct"]  # SP and IP twins with two FB inits


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_resnet20_dense_empty_block_and_cut_rows(representation):
    net = resnet20(representation)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    dense = connectivity_report(net, dense_masks(net), (1, 8, 8))
    assert dense == {"disconnected": False, "unconnected_outputs": 0, "num_outputs": 10, "empty_layers": []}
    assert connectivity_report(net, None, (1, 8, 8))["unconnected_outputs"] == 0  # no masks = dense
    # both convs of a block empty: the identity shortcut still carries the signal
    bypassed = connectivity_report(net, emptied(net, ("layer2.1.conv1", "layer2.1.conv2")), (1, 8, 8))
    assert not bypassed["disconnected"] and bypassed["unconnected_outputs"] == 0
    assert bypassed["empty_layers"] == ["layer2.1.conv1", "layer2.1.conv2"]
    # every conv of layer3.0, the 1x1 projection shortcut included: nothing gets through
    cut = connectivity_report(net, emptied(net, ("layer3.0.",)), (1, 8, 8))
    assert cut["disconnected"] and cut["unconnected_outputs"] == 10
    assert cut["empty_layers"] == ["layer3.0.conv1", "layer3.0.conv2", "layer3.0.shortcut.0"]
    # fc keeps only rows 0..4: logits 5..9 are constants
    masks = dense_masks(net)
    masks["fc.weight"] = torch.zeros_like(masks["fc.weight"])
    masks["fc.weight"][:5] = True
    rows = connectivity_report(net, masks, (1, 8, 8))
    assert not rows["disconnected"] and rows["unconnected_outputs"] == 5 and rows["empty_layers"] == []
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def single_path_masks(model, break_at: str | None):
    """VGG masks keeping, in every conv, only the centre tap from input channel 0 to output
    channel 0, and in the classifier column 0; at ``break_at`` the kept weight reads input
    channel 1 instead, which no earlier layer feeds.  No layer is empty either way."""
    masks = {}
    for name, p in prunable_parameters(model).items():
        m = torch.zeros_like(p, dtype=torch.bool)
        if p.dim() == 4:
            centre = p.shape[-1] // 2
            m[0, 1 if layer_name(name) == break_at else 0, centre, centre] = True
        else:
            m[:, 0] = True
        masks[name] = m
    return masks


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_vgg_one_path_versus_a_broken_path_without_empty_layers(representation):
    torch.manual_seed(0)
    net = get_model("vgg11", 10, 3, 4)
    if representation != "sp":
        net = to_interspace(net, fb_init=representation)
    assert connectivity_report(net, None, (3, 16, 16))["unconnected_outputs"] == 0
    one_path = connectivity_report(net, single_path_masks(net, None), (3, 16, 16))
    assert one_path["unconnected_outputs"] == 0 and one_path["empty_layers"] == []
    broken = connectivity_report(net, single_path_masks(net, "features.8"), (3, 16, 16))
    assert broken["disconnected"] and broken["unconnected_outputs"] == 10 and broken["empty_layers"] == []


def test_torchvision_resnet18():
    torch.manual_seed(0)
    net = get_model("resnet18", 10, 3)
    assert connectivity_report(net, None, (3, 32, 32))["unconnected_outputs"] == 0
    ip = to_interspace(net, fb_init="dct")
    # layer4.0 has a projection shortcut (downsample.0), so emptying it and both convs cuts the net
    cut = emptied(ip, ("layer4.0.",))
    report = connectivity_report(ip, cut, (3, 32, 32))
    assert report["disconnected"]
    assert report["empty_layers"] == ["layer4.0.conv1", "layer4.0.conv2", "layer4.0.downsample.0"]
    assert not connectivity_report(ip, emptied(ip, ("layer4.1.conv",)), (3, 32, 32))["disconnected"]


def test_unknown_mask_name_is_an_error():
    net = resnet20("sp")
    with pytest.raises(KeyError):
        connectivity_report(net, {"nonexistent.weight": torch.ones(1, dtype=torch.bool)}, (1, 8, 8))
