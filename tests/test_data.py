"""Finding, downloading, safely unpickling and batching CIFAR-10 (on fake data, offline)."""
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from minibn.data import (Cifar10, CifarLoader, DataError, download_cifar10, find_cifar10, load_cifar10, load_sample,
                         read_batch, safe_extract)
from minibn.data.loader import MEAN, STD
from tests.conftest import host
from tests.fake_cifar import make_fake_cifar


def test_folder_or_parent_and_env_var(tmp_path, monkeypatch):
    folder = make_fake_cifar(tmp_path)
    assert find_cifar10(str(tmp_path)) == folder
    assert find_cifar10(str(folder)) == folder
    monkeypatch.setenv("MINIBN_DATA", str(tmp_path))
    assert find_cifar10(None) == folder
    data = load_cifar10(str(tmp_path))
    assert data.x_train.shape == (200, 3, 32, 32) and data.x_train.dtype == np.uint8
    assert data.y_test.shape == (40,) and data.y_test.dtype == np.int64


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_pickle_that_runs_code_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": RunsCode()}, protocol=2))
    with pytest.raises(DataError, match=r"not a safe CIFAR-10 batch: refused to load posix.system"):
        read_batch(path)
    assert not (tmp_path / "pwned.txt").exists()


def test_truncated_file_names_the_file(tmp_path):
    folder = make_fake_cifar(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="data_batch_3 is corrupt or truncated"):
        load_cifar10(str(tmp_path))


def test_wrong_content_is_an_error(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"labels": [1, 2]}, protocol=2))
    with pytest.raises(DataError, match="does not hold CIFAR-10"):
        read_batch(path)


def fake_archive(tmp_path, members: dict[str, bytes]):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(buffer.getvalue())
    return archive, hashlib.md5(buffer.getvalue()).hexdigest()


def test_download_verifies_and_unpacks(tmp_path):
    source = make_fake_cifar(tmp_path / "src")
    members = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in source.iterdir()}
    archive, md5 = fake_archive(tmp_path, members)
    target = tmp_path / "cache"
    folder = download_cifar10(target, url=archive.as_uri(), md5=md5)
    assert folder == target / "cifar-10-batches-py"
    assert load_cifar10(str(target)).x_train.shape[0] == 200
    assert [p.name for p in target.iterdir()] == ["cifar-10-batches-py"]  # no temporary left behind


def test_download_with_wrong_md5_keeps_nothing(tmp_path):
    archive, _ = fake_archive(tmp_path, {"cifar-10-batches-py/test_batch": b"x"})
    target = tmp_path / "cache"
    with pytest.raises(DataError, match="MD5"):
        download_cifar10(target, url=archive.as_uri(), md5="0" * 32)
    assert list(target.iterdir()) == []


def test_path_traversal_is_refused(tmp_path):
    archive, _ = fake_archive(tmp_path, {"../evil.txt": b"x"})
    with pytest.raises(DataError, match="outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_offline_is_one_line_saying_where_to_put_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("MINIBN_DATA", raising=False)
    with pytest.raises(DataError) as error:
        load_cifar10(str(tmp_path / "nowhere"))
    message = str(error.value)
    assert "could not be downloaded" in message and "cifar-10-batches-py" in message and "\n" not in message


def test_bundled_sample():
    sample = load_sample()
    assert sample.x_train.shape == (500, 3, 32, 32) and sample.x_test.shape == (200, 3, 32, 32)
    assert np.bincount(sample.y_train).tolist() == [50] * 10


def test_loader_batches_cover_the_epoch_and_reshuffle():
    images = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(10)
    loader = CifarLoader(images, labels, batch_size=4, train=True, seed=0)
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    epoch0 = np.concatenate([host(y) for _, y in batches])
    epoch1 = np.concatenate([host(y) for _, y in loader.epoch(1)])
    assert sorted(epoch0) == list(range(10)) and not np.array_equal(epoch0, epoch1)
    again = np.concatenate([host(y) for _, y in loader.epoch(0)])
    assert np.array_equal(epoch0, again)
    resumed = np.concatenate([host(y) for _, y in loader.epoch(0, start_step=1)])
    assert np.array_equal(resumed, epoch0[4:])


def test_crop_and_flip_move_pixels_as_expected():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, (64, 3, 32, 32)).astype(np.uint8)
    loader = CifarLoader(images, np.arange(64), batch_size=64, train=True, seed=0)
    x, y = next(loader.epoch(0))
    pixels = np.rint((host(x) * np.array(STD)[:, None, None] + np.array(MEAN)[:, None, None]) * 255)
    padded = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))
    matched_flip = 0
    for out, label in zip(pixels, host(y)):
        windows = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(out, (lambda w: w[..., ::-1] if flip else w)(padded[label, :, dy:dy + 32, dx:dx + 32]))]
        assert windows, "every augmented image is a (possibly flipped) crop of its padded source"
        matched_flip += windows[0][2]
    assert 15 < matched_flip < 50  # about half flipped


def test_eval_loader_is_normalized_and_in_order():
    images = np.full((3, 3, 32, 32), 255, dtype=np.uint8)
    x, y = next(CifarLoader(images, np.array([2, 0, 1]), 8, train=False).epoch())
    assert host(y).tolist() == [2, 0, 1]
    np.testing.assert_allclose(host(x)[0, :, 0, 0], (1 - np.array(MEAN)) / np.array(STD), rtol=1e-6)


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.full((2, 3072), 0.5), b"labels": [1, 2]}, "pixels are float64"),
    ({b"data": np.full((2, 3072), 300), b"labels": [1, 2]}, "pixels are int64 from 300 to 300"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1.0, 2.5]}, "labels are float64"),
    ({b"data": [], b"labels": []}, "holds no images"),
])
def test_float_out_of_range_or_empty_batches_are_refused_not_cast(tmp_path, batch, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=message):
        read_batch(path)


def test_a_data_set_of_float_pixels_or_labels_is_refused():
    sample = load_sample()
    with pytest.raises(DataError, match="training images are float32"):
        Cifar10(sample.x_train.astype(np.float32), sample.y_train, sample.x_test, sample.y_test, "floats")
    with pytest.raises(DataError, match="test labels are float64"):
        Cifar10(sample.x_train, sample.y_train, sample.x_test, sample.y_test.astype(np.float64), "floats")
