"""Data: datasets, loaders, and a run's data.

Small datasets (Fashion-MNIST, CIFAR) are held as float tensors and augmented on tensors,
so they pay no DataLoader overhead.  ImageFolder datasets (Tiny-ImageNet, ImageNet) are
indexed (:func:`image_folder_index`) and stream from their files through torch's
DataLoader (:class:`StreamingLoader`, :func:`stream_batches`).

What a run needs from its data is declared by two protocols: :class:`RunData` (what
:class:`PreparedData` and :class:`StreamedData` provide to a run) and :class:`TrainLoader`
(what :class:`TensorLoader` and :class:`StreamingLoader` provide to the trainer, data-parallel
sharding included).

- :mod:`ip.data.datasets`: the dataset registry, the in-memory datasets, ImageFolder indexes and files;
- :mod:`ip.data.loaders`: training loaders, augmentation, fixed subsets and batches;
- :mod:`ip.data.rundata`: a run's data and the ``prepare`` stage's cache.
"""
from .datasets import (DEBIAN_FASHION_MNIST, FASHION_MNIST_FILES, IMAGE_FOLDER_DATASETS, IMAGE_SUFFIXES, STREAMED,
                       DatasetError, ImageFiles, ImageFolderIndex, TensorDataset, available_datasets, fashion_mnist,
                       image_folder_index, image_transform, load_dataset, register_dataset)
from .loaders import (Batch, StreamingLoader, TensorLoader, TrainLoader, augment, batches_of, fixed_subset,
                      stream_batches)
from .rundata import PreparedData, RunData, StreamedData, prepared_cache, read_prepared_cache

__all__ = ["Batch", "DEBIAN_FASHION_MNIST", "DatasetError", "FASHION_MNIST_FILES", "IMAGE_FOLDER_DATASETS",
           "IMAGE_SUFFIXES", "ImageFiles", "ImageFolderIndex", "PreparedData", "RunData", "STREAMED", "StreamedData",
           "StreamingLoader", "TensorDataset", "TensorLoader", "TrainLoader", "augment", "available_datasets",
           "batches_of", "fashion_mnist", "fixed_subset", "image_folder_index", "image_transform", "load_dataset",
           "prepared_cache", "read_prepared_cache", "register_dataset", "stream_batches"]
