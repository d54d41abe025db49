import gzip

import numpy as np
import pytest
from PIL import Image

from core.errors import DatasetError
from core.ml.data import (
    FASHION_MNIST_CLASSES,
    fingerprint,
    limit_dataset,
    load_dataset,
    natural_input_spec,
    parse_tfds_spec,
    read_idx,
)
from core.ml.image_sets import FolderImages
from core.ml.images import InputSpec, decode_image, encode_png, preprocess
from tests.conftest import fashion_test_images


def load(spec, config, input_spec=None, seed=42):
    return load_dataset(spec, input_spec or natural_input_spec(spec),
                        fashion_mnist_dir=config.fashion_mnist_dir, seed=seed)


@pytest.fixture(scope="module")
def fashion(request):
    from core.config import load_config
    return load("fashion_mnist", load_config({}))


def test_fashion_mnist_splits(fashion):
    assert fashion.class_names == FASHION_MNIST_CLASSES
    assert fashion.input_spec == InputSpec(28, 28, 1)
    assert (len(fashion.train), len(fashion.validation), len(fashion.test)) == (55000, 5000, 10000)
    assert fashion.train.images.shape == (55000, 28, 28, 1)
    assert fashion.train.images.dtype == np.uint8
    # Every class appears in validation, carved from the training files.
    assert set(np.unique(fashion.validation.labels)) == set(range(10))
    # The test split is the official t10k file, in order.
    images, labels = fashion_test_images(50)
    assert np.array_equal(fashion.test.images[:50], images)
    assert np.array_equal(fashion.test.labels[:50], labels)


def test_fashion_validation_is_disjoint_and_seeded(fashion, config):
    train_rows = {row.tobytes() for row in fashion.train.images[:20000]}
    overlap = sum(row.tobytes() in train_rows for row in fashion.validation.images[:500])
    assert overlap <= 2  # Fashion-MNIST has a few duplicate images, no more
    again = load("fashion_mnist", config)
    assert again.fingerprint == fashion.fingerprint
    other_seed = load("fashion_mnist", config, seed=7)
    assert other_seed.fingerprint != fashion.fingerprint
    assert not np.array_equal(other_seed.validation.labels, fashion.validation.labels)


def test_fingerprint_covers_pixels_labels_and_split_spec(fashion):
    splits = {"train": fashion.train.take(100)}
    base = fingerprint("spec", splits)
    assert base.startswith("sha256:")
    assert fingerprint("other spec", splits) != base
    changed = fashion.train.take(100)
    labels = changed.labels.copy()
    labels[0] = (labels[0] + 1) % 10
    assert fingerprint("spec", {"train": type(changed)(changed.images, labels)}) != base


def test_limit_dataset_records_the_limit(fashion):
    small = limit_dataset(fashion, 100, 50)
    assert (len(small.train), len(small.validation), len(small.test)) == (100, 50, 50)
    assert "limited to first 100" in small.split_spec
    assert small.fingerprint != fashion.fingerprint


def test_training_and_serving_paths_give_identical_tensors(fashion):
    """The dataset's image, and the same image uploaded as PNG, reach the model identically."""
    spec = fashion.input_spec
    for index in range(20):
        training_tensor = preprocess(fashion.test.images[index], spec)
        uploaded = decode_image(encode_png(fashion.test.images[index]),
                                max_bytes=10**6, max_pixels=10**6)
        serving_tensor = preprocess(uploaded.pixels, spec)
        assert serving_tensor.dtype == training_tensor.dtype == np.float32
        assert np.array_equal(serving_tensor, training_tensor)


def test_missing_fashion_files_name_the_package(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install -y dataset-fashion-mnist"):
        load_dataset("fashion_mnist", InputSpec(28, 28, 1), fashion_mnist_dir=tmp_path, seed=1)


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "broken.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big")
                     + (28).to_bytes(4, "big") + b"\x00" * 100)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize("spec", ["mnist", "tfds:", "folder:", "s3://bucket"])
def test_unknown_dataset_spec_lists_the_valid_forms(spec, config):
    with pytest.raises(DatasetError, match="fashion_mnist.*tfds:.*folder:"):
        load(spec, config, InputSpec(28, 28, 1))


def make_image_folder(root, classes=("cats", "dogs"), per_class=10):
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = np.zeros((40, 30, 3), np.uint8)
            colour[..., index % 3] = 200 + rng.integers(0, 50)
            fmt, suffix = ("PNG", ".png") if i % 2 else ("JPEG", ".jpg")
            Image.fromarray(colour).save(root / name / f"img{i}{suffix}", format=fmt)
    (root / "cats" / "notes.txt").write_text("not an image, ignored")
    return root


def test_folder_source(tmp_path, config):
    root = make_image_folder(tmp_path / "photos")
    dataset = load(f"folder:{root}", config, InputSpec(16, 16, 3))
    assert dataset.class_names == ("cats", "dogs")
    assert len(dataset.train) + len(dataset.validation) + len(dataset.test) == 20
    for split in (dataset.train, dataset.validation, dataset.test):
        assert set(split.labels) == {0, 1}  # stratified: every class in every split
        assert split.images.shape[1:] == (16, 16, 3)
        assert isinstance(split.images, FolderImages)  # the file list, read when used
    # cats are red, dogs green: the labels follow the folders
    cats = np.asarray(dataset.train.images[dataset.train.labels == 0])
    assert cats.shape[1:] == (16, 16, 3) and cats.dtype == np.uint8
    assert cats[..., 0].mean() > 150 and cats[..., 1].mean() < 20
    assert np.array_equal(dataset.train.images[0], np.asarray(dataset.train.images[:1])[0])
    assert load(f"folder:{root}", config, InputSpec(16, 16, 3)).fingerprint == dataset.fingerprint


def test_folder_errors(tmp_path, config):
    with pytest.raises(DatasetError, match="does not exist"):
        load(f"folder:{tmp_path / 'nope'}", config)
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DatasetError, match="at least 2"):
        load(f"folder:{tmp_path / 'one'}", config)
    root = make_image_folder(tmp_path / "broken", per_class=4)
    (root / "dogs" / "bad.png").write_bytes(b"not a png")
    broken = load(f"folder:{root}", config)  # lazy: files are read when a split is used
    with pytest.raises(DatasetError, match="bad.png.*not an image"):
        for split in (broken.train, broken.validation, broken.test):
            np.asarray(split.images)


def test_tfds_spec_parsing():
    assert parse_tfds_spec("tfds:tf_flowers") == ("tf_flowers", None, None)
    assert parse_tfds_spec("tfds:tf_flowers:train[:80%]|train[80%:]") == (
        "tf_flowers", "train[:80%]", "train[80%:]")
    with pytest.raises(DatasetError, match="<train split>\\|<test split>"):
        parse_tfds_spec("tfds:tf_flowers:train[:80%]")


@pytest.mark.slow
def test_tfds_source_with_mock_data(config):
    """The real TFDS code path, with TFDS' mock standing in for the download."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):
        dataset = load("tfds:tf_flowers:train[:80%]|train[80%:]", config, InputSpec(32, 32, 3))
    assert dataset.class_names == ("dandelion", "daisy", "tulips", "sunflowers", "roses")
    assert len(dataset.train) + len(dataset.validation) == 30
    assert dataset.train.images.shape[1:] == (32, 32, 3)
    assert dataset.train.images.dtype == np.uint8
    assert "train[:80%]" in dataset.split_spec and "test=train[80%:]" in dataset.split_spec
