"""Pruned models stored sparsely: kept values, masks packed to bits, and what rebuilds the model.

:func:`save_sparse` writes one `safetensors <https://huggingface.co/docs/safetensors>`_
file (no pickle: loading it runs no code) with four flat tensors:

- ``values``: the kept entries of every masked prunable tensor (for an interspace conv,
  its coefficients lambda), in the tensors' order and, inside a tensor, in row-major order;
- ``masks``: every masked tensor's mask as one bit per entry (``1`` = kept), packed
  most significant bit first into bytes, the tensors one after another;
- ``state.<dtype>``: every other tensor of the state dict (BN parameters and statistics,
  biases, filter bases, unmasked weights), flattened and concatenated per dtype;
- and, in the file's metadata, a JSON header: the layout of those tensors, the
  architecture to rebuild (``arch``), which convs are interspace and which share a filter
  basis, and a sha256 of the tensor bytes (a corrupted file fails to load, with a
  message that says so).

A state-dict key that names the same tensor as another (a filter basis shared by
``share="network"``) is stored once.  Pruned entries load as ``+0.0``; every stored
value, every mask bit and every other tensor comes back bit for bit.

:func:`load_sparse` rebuilds the model from the header (a model of :mod:`ip.models`, or
a ``torchvision.models`` builder) or fills the ``model`` it is given, and returns the
model and its masks.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from torch import nn

from .interspace import _basis_of, filter_bases, interspace_convs, to_interspace
from .masks import Masks, mask_mismatch, prunable_parameters

FORMAT = "ip.sparse"
FORMAT_VERSION = 1
# the architecture record that ip.models.get_model leaves on the models it builds
ARCH_ATTR = "ip_arch"

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


class SparseFileError(ValueError):
    """A file that is not a readable sparse model file, or that does not fit the model given."""


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as bytes, one bit per entry in row-major order, most significant bit first."""
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.reshape(-1, 8) * _BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` bits of ``packed`` (see :func:`pack_bits`) as a flat bool tensor."""
    bits = packed.reshape(-1, 1).bitwise_and(_BIT_WEIGHTS).ne(0)
    return bits.reshape(-1)[:count]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise SparseFileError(f"unknown dtype {name!r}")
    return dtype


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _interspace_record(model: nn.Module) -> dict | None:
    """Which convs are interspace and which filter basis each uses (by its first layer)."""
    layers = [name for name, _ in interspace_convs(model)]
    if not layers:
        return None
    first_of = {id(fb): name for name, fb in filter_bases(model).items()}
    basis_of = {name: first_of[id(_basis_of(conv))] for name, conv in interspace_convs(model)}
    share = "layer" if len(set(basis_of.values())) == len(layers) else "network"
    fb_inits = sorted({fb.fb_init for fb in filter_bases(model).values()})
    return {"layers": layers, "basis_of": basis_of, "share": share, "fb_init": fb_inits[0]}


def _check_arch(arch) -> dict | None:
    if arch is None:
        return None
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise ValueError("arch must be a dict with a 'name' (a model of ip.models, or 'torchvision.models.<name>') "
                         "and optional 'kwargs'")
    kwargs = arch.get("kwargs", {})
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise ValueError(f"arch kwargs must be JSON values: {exc}") from None
    return {"name": arch["name"], "kwargs": dict(kwargs)}


def save_sparse(model: nn.Module, masks: Masks, path, *, arch: dict | None = None, meta: dict | None = None) -> dict:
    """Write ``model`` pruned by ``masks`` to ``path`` as a sparse model file.

    ``masks`` maps prunable parameter names (as :func:`ip.prunable_parameters` spells them)
    to bool tensors; prunable tensors without a mask are stored densely.  Pruned entries
    must be zero in the model (as :class:`ip.MaskEnforcer` leaves them).  ``arch``
    (``{"name": ..., "kwargs": {...}}``) says how to rebuild the model; models from
    :func:`ip.get_model` carry it already.  ``name`` is a model of :mod:`ip.models` or
    ``"torchvision.models.<builder>"``.  ``meta`` is any JSON-able record of the
    caller's, kept in the header (:func:`read_header` returns it under ``"meta"``).

    Returns the header written (layout, sizes in bytes of the file and of its parts).
    """
    params = prunable_parameters(model)
    unknown = set(masks) - set(params)
    if unknown:
        raise mask_mismatch(unknown, params)
    for name, mask in masks.items():
        if mask.shape != params[name].shape:
            raise ValueError(f"mask {name} has shape {tuple(mask.shape)}, the parameter has {tuple(params[name].shape)}")
    arch = _check_arch(arch if arch is not None else getattr(model, ARCH_ATTR, None))
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-able: {exc}") from None

    state = model.state_dict()
    masked = [name for name in state if name in masks]          # state-dict order
    values, bits = [], []
    records = []
    for name in masked:
        tensor = state[name].detach().cpu()
        mask = masks[name].detach().cpu().to(torch.bool)
        stray = int(torch.count_nonzero(tensor[~mask]))
        if stray:
            raise ValueError(f"{name} has {stray} non-zero pruned entries; apply the masks first "
                             "(ip.MaskEnforcer(model, masks) zeroes them)")
        values.append(tensor[mask])
        bits.append(mask.reshape(-1))
        records.append([name, list(tensor.shape), _dtype_name(tensor.dtype), int(mask.sum())])
    dtypes = {r[2] for r in records}
    if len(dtypes) > 1:
        raise ValueError(f"masked tensors have several dtypes {sorted(dtypes)}; convert the model to one dtype first")

    # the other tensors, each stored once (a shared filter basis appears under several keys)
    first_key: dict[tuple, str] = {}
    aliases: dict[str, str] = {}
    other: dict[str, list] = {}
    flat: dict[str, list[torch.Tensor]] = {}
    for key, tensor in state.items():
        if key in masks:
            continue
        tensor = tensor.detach()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                 tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() and ident in first_key:
            aliases[key] = first_key[ident]
            continue
        first_key[ident] = key
        dt = _dtype_name(tensor.dtype)
        other.setdefault(dt, []).append([key, list(tensor.shape)])
        flat.setdefault(dt, []).append(tensor.cpu().reshape(-1))

    tensors: dict[str, torch.Tensor] = {
        "values": torch.cat(values) if values else torch.zeros(0),
        "masks": pack_bits(torch.cat(bits)) if bits else torch.zeros(0, dtype=torch.uint8),
    }
    for dt, parts in flat.items():
        tensors[f"state.{dt}"] = torch.cat(parts).contiguous()
    tensors = {k: v.contiguous() for k, v in tensors.items()}

    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "arch": arch,
        "interspace": _interspace_record(model),
        "masked": records,                 # [name, shape, dtype, kept]
        "state": other,                    # dtype -> [[key, shape], ...]
        "aliases": aliases,                # key -> the key whose tensor it shares
        "sha256": _digest(tensors),
        "meta": meta,
    }
    path = Path(path)
    path.write_bytes(_canonical_safetensors(tensors, {"format": FORMAT,
                                                      "header": json.dumps(header, separators=(",", ":"))}))
    header["bytes"] = {"file": path.stat().st_size, **{k: v.numel() * v.element_size() for k, v in tensors.items()}}
    return header


def _canonical_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes of ``tensors`` and ``metadata``, the same bytes for the same input
    in every process: safetensors writes its metadata in the order of a Rust hash map, which
    changes from process to process, so the header is written again with the keys sorted
    (the tensors' byte offsets do not move; the header stays padded to 8 bytes)."""
    from safetensors.torch import save
    data = save(tensors, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


def packed_ideal_bytes(model: nn.Module, masks: Masks) -> int:
    """Bytes of the kept values, one bit per masked entry, and every other tensor of the
    state dict once (shared tensors once): the size a sparse file cannot go below."""
    state = model.state_dict()
    size = 0
    bits = 0
    seen = set()
    for key, tensor in state.items():
        if key in masks:
            size += int(masks[key].sum()) * tensor.element_size()
            bits += tensor.numel()
            continue
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and ident in seen:
            continue
        seen.add(ident)
        size += tensor.numel() * tensor.element_size()
    return size + math.ceil(bits / 8)


def read_header(path) -> dict:
    """The JSON header of a sparse model file (no tensors read), or a :class:`SparseFileError`."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise SparseFileError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise SparseFileError(f"{path} is not a sparse model file (not a readable safetensors file: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if meta.get("format") != FORMAT or "header" not in meta:
        raise SparseFileError(f"{path} is a safetensors file but not a sparse model file of ip "
                              "(no 'ip.sparse' header); load it with safetensors.torch.load_file")
    try:
        header = json.loads(meta["header"])
    except json.JSONDecodeError:
        raise SparseFileError(f"{path}: its header is not valid JSON (the file is corrupted)") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise SparseFileError(f"{path} has sparse-file format version {header.get('format_version')!r}; this ip "
                              f"reads version {FORMAT_VERSION} (upgrade ip)")
    return header


def _build(arch: dict, interspace: dict | None, path) -> nn.Module:
    name, kwargs = arch["name"], arch.get("kwargs", {})
    if name.startswith("torchvision.models."):
        import torchvision.models as tvm
        builder = name.removeprefix("torchvision.models.")
        if builder not in tvm.list_models(module=tvm):
            raise SparseFileError(f"{path}: torchvision has no model {builder!r}")
        model = tvm.get_model(builder, weights=None, **kwargs)
        setattr(model, ARCH_ATTR, {"name": name, "kwargs": dict(kwargs)})
    else:
        from .models import available_models, get_model
        if name not in available_models():
            raise SparseFileError(f"{path}: architecture {name!r} is not a model of ip.models; pass model=")
        model = get_model(name, **kwargs)
    if interspace is not None:
        to_interspace(model, share=interspace["share"], inplace=True)
    from .onednn_guard import guard_convs
    guard_convs(model)
    return model


def load_sparse(path, model: nn.Module | None = None) -> tuple[nn.Module, Masks]:
    """Read a file of :func:`save_sparse`; returns ``(model, masks)``.

    With ``model`` None the model is rebuilt from the file's architecture record (and
    converted to interspace as it was); a ``model`` given is filled in place and must
    have the file's structure (same names and shapes).  The returned model is on the CPU,
    in train mode as built; its pruned entries are zero.
    """
    from safetensors.torch import load_file
    path = Path(path)
    header = read_header(path)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001
        raise SparseFileError(f"{path}: the tensors cannot be read (the file is corrupted or truncated): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if _digest(tensors) != header.get("sha256"):
        raise SparseFileError(f"{path}: the tensor bytes do not match the header's checksum (the file is corrupted)")
    if model is None:
        if header.get("arch") is None:
            raise SparseFileError(f"{path} records no architecture; build the model and pass it as model=")
        model = _build(header["arch"], header.get("interspace"), path)
    layers = [name for name, _ in interspace_convs(model)]
    expected = (header.get("interspace") or {}).get("layers", [])
    if layers != expected:
        raise SparseFileError(f"{path}: the file has {len(expected)} interspace convs, the model {len(layers)}; "
                              f"{'convert it with ip.to_interspace first' if expected and not layers else 'build the model the file was saved from'}")
    try:
        state = _unflatten(header, tensors)
    except (KeyError, RuntimeError, IndexError, TypeError, ValueError) as exc:
        raise SparseFileError(f"{path}: the header does not describe its tensors ({exc}; the file is corrupted)") from None
    own = model.state_dict()
    differing = sorted(set(own) ^ set(state))
    if differing:
        raise SparseFileError(f"{path} does not fit the model: differing tensors {differing[:3]}; "
                              "pass the model the file was saved from (or model=None)")
    for key, tensor in state.items():
        if tuple(own[key].shape) != tuple(tensor.shape):
            raise SparseFileError(f"{path} does not fit the model: {key} has shape {tuple(tensor.shape)} in the file, "
                                  f"{tuple(own[key].shape)} in the model")
    model.load_state_dict(state)
    masks = {name: state_mask for name, state_mask in _masks(header, tensors).items()}
    return model, masks


def _masks(header: dict, tensors: dict[str, torch.Tensor]) -> Masks:
    total = sum(math.prod(shape) for _, shape, _, _ in header["masked"])
    bits = unpack_bits(tensors["masks"], total)
    out, offset = {}, 0
    for name, shape, _, _ in header["masked"]:
        n = math.prod(shape)
        out[name] = bits[offset:offset + n].reshape(shape).clone()
        offset += n
    return out


def _unflatten(header: dict, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    masks = _masks(header, tensors)
    values = tensors["values"]
    offset = 0
    for name, shape, dtype, kept in header["masked"]:
        mask = masks[name]
        if int(mask.sum()) != kept:
            raise ValueError(f"{name}: {int(mask.sum())} mask bits set, {kept} values recorded")
        dense = torch.zeros(shape, dtype=_dtype(dtype))
        dense[mask] = values[offset:offset + kept].to(dense.dtype)
        state[name] = dense
        offset += kept
    if offset != values.numel():
        raise ValueError(f"{values.numel()} values stored, {offset} recorded")
    for dt, entries in header["state"].items():
        flat = tensors[f"state.{dt}"]
        offset = 0
        for key, shape in entries:
            n = math.prod(shape)
            state[key] = flat[offset:offset + n].reshape(shape).clone()
            offset += n
        if offset != flat.numel():
            raise ValueError(f"state.{dt}: {flat.numel()} entries stored, {offset} recorded")
    for key, target in header["aliases"].items():
        state[key] = state[target]
    return state
