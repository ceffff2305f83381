"""Datasets: the registry of in-memory datasets (Fashion-MNIST, CIFAR) held as normalised
float tensors, and the index, transforms and files of ImageFolder datasets (Tiny-ImageNet,
ImageNet) that stream from disk."""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# sha256 of the *decompressed* idx files (independent of how the .gz was packed)
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


class DatasetError(RuntimeError):
    """A dataset that is missing or corrupt; the message says how to get it."""


@dataclass
class TensorDataset:
    """Images (N, C, H, W) float32, normalised; labels (N,) int64."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool  # whether horizontal flips are a valid augmentation
    crop_padding: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


_REGISTRY: dict[str, Callable[..., TensorDataset]] = {}
STREAMED = ("tiny_imagenet", "imagenet")   # see IMAGE_FOLDER_DATASETS below


def register_dataset(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def available_datasets() -> list[str]:
    return sorted([*_REGISTRY, *STREAMED])


def load_dataset(name: str, root: str | os.PathLike | None = None) -> TensorDataset:
    if name in STREAMED:
        raise DatasetError(f"{name} is an ImageFolder dataset, streamed from its files: use image_folder_index "
                           "and StreamingLoader, it is not held in memory")
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return _REGISTRY[name](root)


def _read_idx(path: Path, expected_sha256: str | None) -> torch.Tensor:
    try:
        raw = gzip.open(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} is not a readable gzip file ({exc}); reinstall the dataset") from exc
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise DatasetError(f"{path} fails its checksum (sha256 of the decompressed file); "
                           "the file is corrupt or not the official release: reinstall it")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8)
    return data.reshape(dims)


def _find_fashion_mnist(root) -> Path:
    # an explicit root is the only place looked at: falling back elsewhere would hide a typo
    if root:
        candidates = [Path(root)]
    else:
        candidates = [Path(os.environ["IP_DATA_ROOT"]) / "fashion-mnist"] if os.environ.get("IP_DATA_ROOT") else []
        candidates.append(DEBIAN_FASHION_MNIST)
    for c in candidates:
        if all((c / f).exists() for f in FASHION_MNIST_FILES):
            return c
    raise DatasetError(
        "Fashion-MNIST not found in " + ", ".join(map(str, candidates))
        + ": install Debian's package (apt-get install dataset-fashion-mnist) or put the four idx .gz files "
        "in data.root")


@register_dataset("fashion_mnist")
def fashion_mnist(root=None, verify: bool = True) -> TensorDataset:
    base = _find_fashion_mnist(root)
    parts = {f: _read_idx(base / f, sha if verify else None) for f, sha in FASHION_MNIST_FILES.items()}
    mean, std = (0.2860,), (0.3530,)
    def norm(x):
        return ((x.float() / 255.0).unsqueeze(1) - mean[0]) / std[0]
    return TensorDataset(norm(parts["train-images-idx3-ubyte.gz"]), parts["train-labels-idx1-ubyte.gz"].long(),
                         norm(parts["t10k-images-idx3-ubyte.gz"]), parts["t10k-labels-idx1-ubyte.gz"].long(),
                         10, mean, std, hflip=True, crop_padding=2)


def _torchvision_cifar(cls_name: str, num_classes: int, root) -> TensorDataset:
    import torchvision
    root = Path(root or os.environ.get("IP_DATA_ROOT", "data/raw"))
    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(root, train=True, download=False)
        test = cls(root, train=False, download=False)
    except RuntimeError:
        try:
            train = cls(root, train=True, download=True)
            test = cls(root, train=False, download=True)
        except Exception as exc:  # noqa: BLE001 - no network or a broken archive: same advice
            raise DatasetError(f"{cls_name} not found under {root} and could not be downloaded ({type(exc).__name__}); "
                               f"put torchvision's {cls_name} files under data.root") from exc
    mean = (0.4914, 0.4822, 0.4465) if num_classes == 10 else (0.5071, 0.4865, 0.4409)
    std = (0.2470, 0.2435, 0.2616) if num_classes == 10 else (0.2673, 0.2564, 0.2762)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    def conv(ds):
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        return (x - m) / s, torch.tensor(ds.targets, dtype=torch.long)
    xtr, ytr = conv(train)
    xte, yte = conv(test)
    return TensorDataset(xtr, ytr, xte, yte, num_classes, mean, std, hflip=True, crop_padding=4)


register_dataset("cifar10")(lambda root=None: _torchvision_cifar("CIFAR10", 10, root))
register_dataset("cifar100")(lambda root=None: _torchvision_cifar("CIFAR100", 100, root))


# ------------------------------------------------------------------ ImageFolder datasets (streamed)

# image_size: the network's input; resize: the shorter side before the centre crop in evaluation;
# train_crop: "pad" (random crop of a padded image, the small-image recipe) or "random_resized"
# (RandomResizedCrop, the ImageNet recipe).  Normalisation: the ImageNet statistics.
IMAGE_FOLDER_DATASETS = {
    "tiny_imagenet": {"image_size": 64, "resize": 64, "train_crop": "pad", "padding": 8},
    "imagenet": {"image_size": 224, "resize": 256, "train_crop": "random_resized", "padding": 0},
}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


@dataclass
class ImageFolderIndex:
    """The files of an ImageFolder dataset: paths relative to ``root`` and class indices."""
    root: str
    classes: list[str]
    train_files: list[str]
    train_labels: list[int]
    test_files: list[str]
    test_labels: list[int]


def _images_under(directory: Path) -> list[Path]:
    return sorted(f for f in directory.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())


def image_folder_index(name: str, root: str | os.PathLike) -> ImageFolderIndex:
    """List ``root/train/<class>/...`` and the validation split used as test set:
    ``root/val/<class>/...``, or Tiny-ImageNet's own layout (``val/images`` with
    ``val/val_annotations.txt``).  A missing or empty split is a :class:`DatasetError`."""
    if name not in IMAGE_FOLDER_DATASETS:
        raise ValueError(f"unknown ImageFolder dataset {name!r}; available: {', '.join(IMAGE_FOLDER_DATASETS)}")
    root = Path(root)
    how = (f"point data.root at a folder with train/ and val/ subfolders of class directories "
           f"({name}: see docs/scaling.md)")
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise DatasetError(f"{name}: {train_dir} or {val_dir} not found: {how}")
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if not classes:
        raise DatasetError(f"{name}: no class directories in {train_dir}: {how}")
    index = {c: i for i, c in enumerate(classes)}
    train_files, train_labels = [], []
    for c in classes:
        files = _images_under(train_dir / c)
        train_files += [str(f.relative_to(root)) for f in files]
        train_labels += [index[c]] * len(files)
    annotations = val_dir / "val_annotations.txt"
    test_files, test_labels = [], []
    if annotations.exists():
        for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise DatasetError(f"{annotations}:{line_no}: expected '<file>\\t<class of train/>', "
                                   f"got {line[:80]!r}")
            test_files.append(str((val_dir / "images" / fields[0]).relative_to(root)))
            test_labels.append(index[fields[1]])
    else:
        for d in sorted(x for x in val_dir.iterdir() if x.is_dir()):
            if d.name not in index:
                raise DatasetError(f"{name}: validation class {d.name!r} has no training directory in {train_dir}")
            files = _images_under(d)
            test_files += [str(f.relative_to(root)) for f in files]
            test_labels += [index[d.name]] * len(files)
    if not train_files or not test_files:
        raise DatasetError(f"{name}: no images found in {train_dir if not train_files else val_dir}: {how}")
    return ImageFolderIndex(str(root), classes, train_files, train_labels, test_files, test_labels)


def image_transform(name: str, train: bool, augment: bool = True, image_size: int | None = None):
    """torchvision transform of an ImageFolder dataset: the training recipe (``train`` and
    ``augment``) or the evaluation one (resize, centre crop), both normalised."""
    from torchvision import transforms as T
    spec = IMAGE_FOLDER_DATASETS[name]
    size = image_size or spec["image_size"]
    resize = round(spec["resize"] * size / spec["image_size"])
    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train and augment:
        if spec["train_crop"] == "random_resized":
            return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
        return T.Compose([T.Resize(size), T.CenterCrop(size), T.RandomCrop(size, padding=spec["padding"]),
                          T.RandomHorizontalFlip(), *norm])
    return T.Compose([T.Resize(resize), T.CenterCrop(size), *norm])


class ImageFiles(torch.utils.data.Dataset):
    """(image, label) pairs read from files on demand; a file that cannot be decoded is a
    :class:`DatasetError` naming it."""

    def __init__(self, root: str | os.PathLike, files: list[str], labels: list[int], transform):
        self.root, self.files, self.labels, self.transform = Path(root), list(files), list(labels), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image
        path = self.root / self.files[i]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path} cannot be read as an image ({exc}); restore or remove the file") from exc
        return self.transform(image), self.labels[i]
