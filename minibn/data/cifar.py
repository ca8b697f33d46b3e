"""CIFAR-10: find it, download it, read its pickles safely, or use the bundled sample.

Images come back as uint8 arrays (N, 3, 32, 32) and labels as int64 (N,), on the host.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SAMPLE_PATH = Path(__file__).parent / "cifar10_sample.npz"


class DataError(RuntimeError):
    """The data set is missing, unreadable or unsafe; the message says which file and what to do."""


@dataclass
class Cifar10:
    x_train: np.ndarray  # uint8 (N, 3, 32, 32)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def __post_init__(self):
        """Images must be uint8 pixels and labels integers 0-9: a float would be cast silently, and wrongly."""
        for name, images, labels in (("training", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, 32, 32):
                raise DataError(f"{self.source}: the {name} images are {images.dtype} {images.shape}; "
                                f"expected uint8 pixels (N, 3, 32, 32)")
            check_labels(labels, len(images), f"{self.source}: the {name} labels")

    def subset(self, train: int | None = None, test: int | None = None) -> "Cifar10":
        """The first ``train`` training and first ``test`` test images (all when None)."""
        return Cifar10(self.x_train[:train], self.y_train[:train], self.x_test[:test], self.y_test[:test],
                       self.source)


# ---- reading the python-version batch files -----------------------------------------------
_reconstruct = np.ndarray((0,)).__reduce__()[0]  # numpy's array rebuilder, whatever module it lives in
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes in protocol-2 pickles
}


class UnsafePickle(pickle.UnpicklingError):
    """The pickle names a callable that a CIFAR-10 batch never needs."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10's batch files hold: dicts, lists, strings and numpy arrays.

    A pickle can name any Python callable (os.system, say) and have it called while
    loading. Here every name outside the few that arrays and bytes need is refused.
    """

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"refused to load {module}.{name}: a CIFAR-10 batch holds only arrays and lists") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images uint8 (N, 3, 32, 32), labels int64 (N,); DataError if unsafe or corrupt."""
    try:
        with open(path, "rb") as f:
            batch = SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except UnsafePickle as error:
        raise DataError(f"{path} is not a safe CIFAR-10 batch: {error}") from None
    except Exception as error:  # truncated or garbled files raise many kinds of errors
        raise DataError(f"{path} is corrupt or truncated ({type(error).__name__}: {error})") from None
    try:
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
        images = data.reshape(len(data), 3, 32, 32)
    except Exception as error:
        raise DataError(f"{path} does not hold CIFAR-10 data and labels ({type(error).__name__}: {error})") from None
    if len(images) == 0:
        raise DataError(f"{path} holds no images; replace it with the original file")
    if data.dtype.kind not in "ui" or data.min() < 0 or data.max() > 255:
        raise DataError(f"{path}: pixels are {data.dtype} from {data.min()} to {data.max()}; a CIFAR-10 batch "
                        f"holds integers 0-255 (converted data? use the original files)")
    check_labels(labels, len(images), f"{path}: the labels")
    return images.astype(np.uint8), labels.astype(np.int64)


def check_labels(labels: np.ndarray, num_images: int, what: str) -> None:
    """DataError unless ``labels`` are ``num_images`` integers 0-9 (floats are refused, not truncated)."""
    if labels.dtype.kind not in "ui" or labels.shape != (num_images,):
        raise DataError(f"{what} are {labels.dtype} {labels.shape}; expected {num_images} integers 0-9")
    if num_images and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{what} go from {labels.min()} to {labels.max()}; expected integers 0-9")


def load_cifar10_folder(folder: Path) -> Cifar10:
    """Read the five training batches and the test batch of a ``cifar-10-batches-py`` folder."""
    parts = [read_batch(folder / name) for name in TRAIN_FILES]
    x_test, y_test = read_batch(folder / TEST_FILE)
    return Cifar10(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                   x_test, y_test, source=str(folder))


def load_sample() -> Cifar10:
    """The small real sample shipped with minibn (no download, no pickle)."""
    with np.load(SAMPLE_PATH, allow_pickle=False) as sample:
        return Cifar10(sample["x_train"], sample["y_train"].astype(np.int64), sample["x_test"],
                       sample["y_test"].astype(np.int64), source=f"bundled sample ({SAMPLE_PATH.name})")


# ---- finding and downloading ----------------------------------------------------------------
def search_dirs(data_dir: str | None) -> list[Path]:
    """Where to look, in order: --data-dir, then $MINIBN_DATA, then ~/.cache/minibn."""
    dirs = [data_dir, os.environ.get("MINIBN_DATA"), str(Path.home() / ".cache" / "minibn")]
    return [Path(d).expanduser() for d in dirs if d]


def find_cifar10(data_dir: str | None) -> Path | None:
    """The ``cifar-10-batches-py`` folder, given it or its parent, in the first place that has it."""
    for d in search_dirs(data_dir):
        for candidate in (d, d / FOLDER):
            if (candidate / TEST_FILE).exists():
                return candidate
    return None


def load_cifar10(data_dir: str | None = None, download: bool = True, console=None) -> Cifar10:
    """Find CIFAR-10 (see search_dirs), downloading it into the first place if it is missing."""
    folder = find_cifar10(data_dir)
    if folder is None:
        target = search_dirs(data_dir)[0]
        if not download:
            raise DataError(f"CIFAR-10 not found in {', '.join(map(str, search_dirs(data_dir)))}")
        folder = download_cifar10(target, console=console)
    return load_cifar10_folder(folder)


def download_cifar10(target: Path, url: str = CIFAR_URL, md5: str = CIFAR_MD5, console=None) -> Path:
    """Download the archive, check its MD5, and unpack it into ``target/cifar-10-batches-py`` atomically."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data folder {target} ({error.strerror}); pass another --data-dir") \
            from None
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(archive, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), console=console, transient=True) as progress:
                    task = progress.add_task("downloading CIFAR-10", total=total)
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        progress.advance(task, len(chunk))
        except OSError as error:
            raise DataError(
                f"CIFAR-10 is not in {target} and could not be downloaded ({error}); put the "
                f"'{FOLDER}' folder from {CIFAR_URL} there, or pass --data-dir, or use --data sample") from None
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if digest != md5:
            raise DataError(f"downloaded archive has MD5 {digest}, expected {md5}; nothing was kept")
        unpacked = Path(tmp) / "unpacked"
        safe_extract(archive, unpacked)
        if not (unpacked / FOLDER / TEST_FILE).exists():
            raise DataError(f"the archive from {url} holds no {FOLDER}/{TEST_FILE}")
        final = target / FOLDER
        if final.exists():
            shutil.rmtree(final)
        os.replace(unpacked / FOLDER, final)  # atomic: a half-unpacked folder is never seen
    return final


def safe_extract(archive: Path, destination: Path) -> None:
    """Unpack a .tar.gz, refusing links and any member that would land outside ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            path = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or root not in (path, *path.parents):
                raise DataError(f"refused to unpack {member.name!r}: it would write outside the data folder")
        for member in members:
            if member.isdir():
                (root / member.name).mkdir(parents=True, exist_ok=True)
                continue
            (root / member.name).parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(root / member.name, "wb") as dst:
                shutil.copyfileobj(src, dst)


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a batch file in the official layout (used to build test fixtures)."""
    batch = {b"batch_label": b"fake", b"labels": [int(v) for v in labels],
             b"data": images.reshape(len(images), -1).astype(np.uint8), b"filenames": [b"x.png"] * len(images)}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def build_sample(folder: Path, out: Path, per_class_train: int = 50, per_class_test: int = 20) -> None:
    """Cut the bundled sample from the real data: the first images of each class, as .npz (under 2 MB)."""
    full = load_cifar10_folder(folder)

    def first_per_class(x, y, k):
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:k] for c in range(10)]))
        return x[keep], y[keep].astype(np.uint8)

    x_train, y_train = first_per_class(full.x_train, full.y_train, per_class_train)
    x_test, y_test = first_per_class(full.x_test, full.y_test, per_class_test)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
