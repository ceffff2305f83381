"""The factorised inference path: same outputs as the reparametrised model, the MACs the
cost report counts, and exports (torch.export, TorchScript; ONNX when installed)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ip
from ip.factorised import FactorisedConv2d, to_factorised
from ip.masks import MaskEnforcer, cost_report, masks_from_scores, prunable_parameters


def pruned_ip(model: nn.Module, sparsity: float, seed: int = 0, share: str = "layer"):
    g = torch.Generator().manual_seed(seed)
    model = ip.to_interspace(model, fb_init="random_orthogonal", share=share, generator=g)
    with torch.no_grad():
        for fb in ip.basis_parameters(model):
            fb.add_(0.1 * torch.randn(fb.shape, generator=g))            # as after training
    masks = masks_from_scores({n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()},
                              sparsity)
    MaskEnforcer(model, masks).remove()
    return model.eval(), masks


@pytest.mark.parametrize("groups,stride,padding,dilation,mode", [
    (1, 1, 1, 1, "zeros"), (1, 2, 0, 1, "zeros"), (2, 1, 2, 2, "zeros"), (4, 1, 1, 1, "circular"),
    (1, 2, 1, 1, "reflect")])
def test_factorised_conv_matches_the_interspace_conv(groups, stride, padding, dilation, mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=True,
                     padding_mode=mode).double()
    net, masks = pruned_ip(nn.Sequential(conv), 0.7)
    fact = to_factorised(net, masks)
    assert isinstance(fact[0], FactorisedConv2d)
    x = torch.randn(3, 4, 11, 9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fact(x), net(x), rtol=1e-12, atol=1e-12)


def test_a_depthwise_network_matches_and_counts_the_reported_macs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1))
    net, masks = pruned_ip(net, 0.8)
    fact = to_factorised(net, masks)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(fact(x), net(x), rtol=1e-5, atol=1e-5)
    # the factorised modules' MACs are the report's sparse MACs of the interspace convs
    sizes = {"0": 144, "2": 144, "4": 36}
    counted = sum(fact.get_submodule(n).macs(hw) for n, hw in sizes.items())
    report = cost_report(net, masks, (3, 12, 12))
    one_by_one = int(masks["6.weight"].sum()) * 36
    assert counted == report["flops_sparse"] - one_by_one


def test_resnet_factorised_matches_and_the_source_is_untouched():
    net, masks = pruned_ip(ip.get_model("resnet20", in_channels=1, width=8), 0.95, share="network")
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        expected = net(x)
        fact = to_factorised(net)                       # kept = the non-zero coefficients
        torch.testing.assert_close(fact(x), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
    assert sum(isinstance(m, FactorisedConv2d) for m in fact.modules()) == 19
    assert len(list(ip.filter_bases(net))) == 1


def _models():
    net, masks = pruned_ip(ip.get_model("resnet20", in_channels=1, width=8), 0.9)
    return {"ip": net, "factorised": to_factorised(net, masks)}


@pytest.mark.parametrize("kind", ["ip", "factorised"])
def test_torch_export_gives_the_same_outputs(kind):
    model = _models()[kind]
    x = torch.randn(2, 1, 16, 16)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ip", "factorised"])
def test_torchscript_gives_the_same_outputs(kind, tmp_path):
    model = _models()[kind]
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        scripted = torch.jit.trace(model, (x,))
    scripted.save(str(tmp_path / "m.pt"))
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-6)


def test_the_factorised_conv_scripts():
    net, masks = pruned_ip(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1)), 0.5)
    module = to_factorised(net, masks)[0]
    scripted = torch.jit.script(module)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ip", "factorised"])
def test_onnx_export_runs(kind, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export is optional: pip install 'interspace-pruning[onnx]'")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript ([onnx] extra)")
    import onnx
    model = _models()[kind]
    torch.onnx.export(model, (torch.randn(2, 1, 16, 16),), str(tmp_path / "m.onnx"), dynamo=True)
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")))
