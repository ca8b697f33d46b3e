"""Data: CIFAR-10 on disk (minibn.data.cifar) and on-device batches (minibn.data.loader)."""
from minibn.data.cifar import (CLASSES, Cifar10, DataError, build_sample, download_cifar10, find_cifar10,
                               load_cifar10, load_cifar10_folder, load_sample, read_batch, safe_extract,
                               write_batch)
from minibn.data.loader import MEAN, STD, CifarLoader

__all__ = ["CLASSES", "Cifar10", "DataError", "build_sample", "download_cifar10", "find_cifar10",
           "load_cifar10", "load_cifar10_folder", "load_sample", "read_batch", "safe_extract", "write_batch",
           "MEAN", "STD", "CifarLoader"]
