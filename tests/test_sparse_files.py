"""Sparse model files: exact round trips (SP, IP, every model of ip.models, a torchvision
model), the size against the packed ideal, and one clear error for a bad file."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import ip
from ip.masks import MaskEnforcer, masks_from_scores, prunable_parameters
from ip.sparse_files import SparseFileError, load_sparse, pack_bits, packed_ideal_bytes, save_sparse, unpack_bits

SMALL = {"resnet20": 4, "resnet32": 4, "resnet56": 2, "vgg11": 4, "vgg16": 4, "vgg19": 2,
         "resnet18": None, "resnet50": None}   # every model of ip.models (torchvision ResNets: fixed width)
# every model in every representation, except the two large ones: one each (seconds per round trip)
CASES = [(name, repr_) for name in sorted(SMALL) for repr_ in ("sp", "ip", "ip_network")
         if SMALL[name] is not None or (name, repr_) in {("resnet18", "ip"), ("resnet50", "ip_network")}]


def pruned(model: nn.Module, sparsity: float, seed: int = 0) -> tuple[nn.Module, dict]:
    """``model`` with random masks at ``sparsity`` applied, and trained-looking filter bases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g, dtype=p.dtype))     # bases no longer the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.num_batches_tracked.fill_(17)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}
    masks = masks_from_scores(scores, sparsity)
    MaskEnforcer(model, masks).remove()
    return model, masks


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A tensor's bits as integers; a zero of either sign as +0.0 (pruned entries come back as +0.0)."""
    if not t.is_floating_point():
        return t
    t = torch.where(t == 0, torch.zeros_like(t), t)
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def assert_bit_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(_bits(a[key]), _bits(b[key])), key


def roundtrip(model, masks, tmp_path, **kw):
    path = tmp_path / "model.safetensors"
    header = save_sparse(model, masks, path, **kw)
    loaded, loaded_masks = load_sparse(path)
    return header, loaded, loaded_masks


def test_bits_pack_and_unpack_any_length():
    g = torch.Generator().manual_seed(0)
    for n in (1, 7, 8, 9, 64, 1001):
        bits = torch.rand(n, generator=g) < 0.3
        packed = pack_bits(bits)
        assert packed.dtype == torch.uint8 and packed.numel() == (n + 7) // 8
        assert torch.equal(unpack_bits(packed, n), bits)
    assert pack_bits(torch.tensor([True, False, False, False, False, False, False, True])).item() == 0b10000001


@pytest.mark.parametrize("name,repr_", CASES)
def test_every_model_round_trips_bit_for_bit(name, repr_, tmp_path):
    model = ip.get_model(name, num_classes=10, in_channels=1, width=SMALL[name])
    if repr_ != "sp":
        model = ip.to_interspace(model, fb_init="dct", share="network" if repr_ == "ip_network" else "layer")
    model, masks = pruned(model, 0.9)
    _, loaded, loaded_masks = roundtrip(model, masks, tmp_path)
    assert type(loaded) is type(model)
    assert_bit_equal(model.state_dict(), loaded.state_dict())
    assert set(loaded_masks) == set(masks) and all(torch.equal(loaded_masks[n], masks[n]) for n in masks)
    # the rebuilt model shares its bases as the saved one did
    assert len(ip.filter_bases(loaded)) == len(ip.filter_bases(model))
    model.eval(), loaded.eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_a_torchvision_model_round_trips(tmp_path):
    tvm = pytest.importorskip("torchvision.models")
    model = ip.to_interspace(tvm.mobilenet_v2(num_classes=10), fb_init="dct")     # depthwise convs too
    model, masks = pruned(model, 0.95)
    _, loaded, loaded_masks = roundtrip(model, masks, tmp_path,
                                        arch={"name": "torchvision.models.mobilenet_v2", "kwargs": {"num_classes": 10}})
    assert_bit_equal(model.state_dict(), loaded.state_dict())
    assert all(torch.equal(loaded_masks[n], masks[n]) for n in masks)


def test_float64_and_partial_masks_round_trip_into_a_given_model(tmp_path):
    model = ip.to_interspace(ip.get_model("resnet20", in_channels=1, width=4), fb_init="dct").double()
    model, masks = pruned(model, 0.8)
    del masks["fc.weight"]                                    # a prunable tensor left dense: stored whole
    path = tmp_path / "m.safetensors"
    save_sparse(model, masks, path)
    target = ip.to_interspace(ip.get_model("resnet20", in_channels=1, width=4)).double()
    loaded, loaded_masks = load_sparse(path, model=target)
    assert loaded is target and set(loaded_masks) == set(masks)
    assert_bit_equal(model.state_dict(), loaded.state_dict())


@pytest.mark.parametrize("sparsity", [0.9, 0.98])
@pytest.mark.parametrize("repr_", ["sp", "ip"])
def test_size_is_within_1_2_of_the_packed_ideal_and_far_below_torch_save(repr_, sparsity, tmp_path):
    model = ip.get_model("resnet20", in_channels=1, width=16)
    if repr_ == "ip":
        model = ip.to_interspace(model, fb_init="dct")
    model, masks = pruned(model, sparsity)
    header = save_sparse(model, masks, tmp_path / "m.safetensors")
    ideal = packed_ideal_bytes(model, masks)
    assert header["bytes"]["file"] <= 1.2 * ideal
    torch.save({"state": model.state_dict(), "masks": masks}, tmp_path / "m.pt")
    assert (tmp_path / "m.pt").stat().st_size > 5 * header["bytes"]["file"]


def test_a_model_without_an_architecture_needs_model_given(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    model, masks = pruned(model, 0.5)
    save_sparse(model, masks, tmp_path / "m.safetensors")
    with pytest.raises(SparseFileError, match="records no architecture; build the model and pass it as model="):
        load_sparse(tmp_path / "m.safetensors")
    loaded, _ = load_sparse(tmp_path / "m.safetensors", model=nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(),
                                                                            nn.Conv2d(8, 4, 3)))
    assert_bit_equal(model.state_dict(), loaded.state_dict())


@pytest.fixture
def saved(tmp_path):
    model, masks = pruned(ip.to_interspace(ip.get_model("resnet20", in_channels=1, width=4)), 0.9)
    path = tmp_path / "m.safetensors"
    save_sparse(model, masks, path)
    return path, model, masks


def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize("damage", ["flip a value byte", "truncate", "garbage", "empty"])
def test_a_corrupted_file_is_one_clear_error(saved, damage):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    if damage == "flip a value byte":
        data[-5] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"\x00\x01not a safetensors file" * 10)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(SparseFileError) as exc:
        load_sparse(path)
    text = one_line(exc)
    assert str(path) in text and ("corrupted" in text or "not a sparse model file" in text)


def test_a_foreign_safetensors_file_is_one_clear_error(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(SparseFileError) as exc:
        load_sparse(path)
    assert "not a sparse model file of ip" in one_line(exc)
    with pytest.raises(SparseFileError, match="no such file"):
        load_sparse(tmp_path / "missing.safetensors")


def test_a_file_that_does_not_fit_the_model_is_one_clear_error(saved):
    path, _, _ = saved
    with pytest.raises(SparseFileError) as exc:
        load_sparse(path, model=ip.get_model("resnet20", in_channels=1, width=4))     # spatial, file is IP
    assert "convert it with ip.to_interspace first" in one_line(exc)
    with pytest.raises(SparseFileError) as exc:
        load_sparse(path, model=ip.to_interspace(ip.get_model("resnet20", in_channels=1, width=8)))
    assert "has shape" in one_line(exc)


def test_save_refuses_masks_of_the_other_representation_and_unapplied_masks(tmp_path):
    sp = ip.get_model("resnet20", in_channels=1, width=4)
    _, sp_masks = pruned(copy.deepcopy(sp), 0.9)
    with pytest.raises(ValueError, match=r"look like masks of the spatial \(SP\) form and the model is interspace"):
        save_sparse(ip.to_interspace(sp), sp_masks, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="non-zero pruned entries; apply the masks first"):
        save_sparse(sp, sp_masks, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


WRITE_ONE = """
import sys, torch, ip
from ip.sparse_files import save_sparse
torch.manual_seed(0)
model = ip.to_interspace(ip.get_model("resnet20", num_classes=10, in_channels=1, width=4))
save_sparse(model, {}, sys.argv[1], meta={"b": 1, "a": 2})
"""


def test_the_same_model_gives_the_same_bytes_in_every_process(tmp_path):
    """A run's start file is an input of its checkpoint's name: the bytes must not depend on
    the process that wrote them (safetensors itself writes its metadata in hash-map order)."""
    import json
    import subprocess
    import sys
    paths = [tmp_path / f"p{i}.safetensors" for i in range(5)]   # each has a new hash-map order
    for path in paths:
        subprocess.run([sys.executable, "-c", WRITE_ONE, str(path)], check=True, capture_output=True, timeout=120)
    assert len({p.read_bytes() for p in paths}) == 1
    for path in paths:   # the keys in sorted order, whichever order the writer's map had
        data = path.read_bytes()
        n = int.from_bytes(data[:8], "little")
        assert n % 8 == 0
        assert list(json.loads(data[8:8 + n])["__metadata__"]) == ["format", "header"]
    loaded, _ = load_sparse(paths[0])
    assert loaded is not None
