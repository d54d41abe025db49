"""Dataset sources, chosen by one string, and their train/validation/test splits.

Specs:
    ``fashion_mnist``                   Debian's dataset-fashion-mnist IDX files (default).
    ``tfds:<name>[:<train>|<test>]``    a TFDS catalog dataset, e.g.
                                        ``tfds:tf_flowers:train[:80%]|train[80%:]``.
    ``folder:<path>``                   one subfolder of JPEG/PNG images per class.

Every source yields uint8 images already at the model's input size (via
``images.resize_to_spec``) and carves validation from training with a fixed seed.
A folder's images are read lazily (``FolderImages``: the file list in memory, each image
decoded and resized when used), so a folder larger than memory trains and evaluates:
every consumer of a whole split works through it in batches (``batches``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.errors import DatasetError
from core.ml.image_sets import FolderImages, Images
from core.ml.images import InputSpec, resize_to_spec
from core.registry.records import VersionMetadata

# From the Fashion-MNIST README (labels 0..9).
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_VALIDATION_SIZE = 5000
FOLDER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Folder datasets: fraction of each class held out for validation and for test.
FOLDER_HOLDOUT_FRACTION = 0.15
# TFDS catalog names, optionally with a builder config: tf_flowers, mnist_corrupted/fog.
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}(/[A-Za-z0-9_.+-]{1,64})?$")
# TFDS datasets: fraction of the training split carved out for validation.
TFDS_VALIDATION_FRACTION = 0.1
# Sources without a fixed image size are resized to this for small_cnn.
DEFAULT_COLOUR_SPEC = InputSpec(64, 64, 3)


@dataclass(frozen=True)
class Split:
    """Images and labels of one split. images: uint8 [N, H, W, C] (a folder's: read when
    used, ``FolderImages``); labels: int64 [N]."""

    images: Images
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int) -> "Split":
        """The first ``n`` examples (for quick runs and tests)."""
        return Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset with its splits, class names and a fingerprint of its content."""

    name: str
    class_names: tuple[str, ...]
    input_spec: InputSpec
    train: Split
    validation: Split
    test: Split
    split_spec: str

    @functools.cached_property
    def fingerprint(self) -> str:
        """Computed when first asked (registration records it): a folder's means reading
        every file, which the many loads that only evaluate or compare do not need."""
        return fingerprint(self.split_spec, {"train": self.train,
                                             "validation": self.validation, "test": self.test})

    def describe(self) -> dict:
        """Dataset facts recorded in a version's metadata."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "split_spec": self.split_spec,
            "sizes": {
                "train": len(self.train),
                "validation": len(self.validation),
                "test": len(self.test),
            },
        }


def natural_input_spec(spec: str) -> InputSpec:
    """The input size a source suggests for a model trained from scratch."""
    return InputSpec(28, 28, 1) if _kind(spec) == "fashion_mnist" else DEFAULT_COLOUR_SPEC


def load_dataset(spec: str, input_spec: InputSpec, *, fashion_mnist_dir: Path,
                 seed: int) -> Dataset:
    """Loads the dataset named by ``spec`` with images resized to ``input_spec``.

    Raises:
        DatasetError: unknown spec, missing files or a dataset that cannot be read.
    """
    kind = _kind(spec)
    if kind == "fashion_mnist":
        return _load_fashion_mnist(Path(fashion_mnist_dir), input_spec, seed)
    if kind == "tfds":
        return _load_tfds(spec, input_spec, seed)
    return _load_folder(spec, input_spec, seed)


def _kind(spec: str) -> str:
    if spec == "fashion_mnist":
        return "fashion_mnist"
    if spec.startswith("tfds:") and len(spec) > len("tfds:"):
        parse_tfds_spec(spec)  # refuses a bad name before TFDS builds any path from it
        return "tfds"
    if spec.startswith("folder:") and len(spec) > len("folder:"):
        return "folder"
    raise DatasetError(
        f"unknown dataset {spec!r}. To fix this, use 'fashion_mnist', "
        "'tfds:<name>[:<train split>|<test split>]' or 'folder:<path>'."
    )


def fingerprint(split_spec: str, splits: dict[str, Split]) -> str:
    """SHA-256 over the split spec and every split's pixels and labels (a folder's: its
    files' bytes, read a block at a time, so that fingerprinting holds no split)."""
    digest = hashlib.sha256(split_spec.encode())
    for name in sorted(splits):
        digest.update(name.encode())
        images = splits[name].images
        if isinstance(images, FolderImages):
            for path in images.files:
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023
                        digest.update(block)
        else:
            digest.update(np.ascontiguousarray(images).tobytes())
        digest.update(np.ascontiguousarray(splits[name].labels).tobytes())
    return "sha256:" + digest.hexdigest()


def _make_dataset(name: str, class_names: Sequence[str], input_spec: InputSpec, train: Split,
                  validation: Split, test: Split, split_spec: str) -> Dataset:
    return Dataset(
        name=name,
        class_names=tuple(class_names),
        input_spec=input_spec,
        train=train,
        validation=validation,
        test=test,
        split_spec=split_spec,
    )


def _carve_validation(split: Split, size: int, seed: int) -> tuple[Split, Split]:
    """Shuffles with ``seed`` and returns (train without validation, validation)."""
    order = np.random.default_rng(seed).permutation(len(split))
    val_idx, train_idx = np.sort(order[:size]), np.sort(order[size:])
    return (Split(split.images[train_idx], split.labels[train_idx]),
            Split(split.images[val_idx], split.labels[val_idx]))


def _resize_all(images: Iterable[np.ndarray], input_spec: InputSpec) -> np.ndarray:
    return np.stack([resize_to_spec(image, input_spec) for image in images])


# --- fashion_mnist --------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """Reads a gzipped IDX file (the MNIST format) into a uint8 array."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file.")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: expected {shape}, got {data.size} bytes.")
    return data.reshape(shape)


def _load_fashion_mnist(directory: Path, input_spec: InputSpec, seed: int) -> Dataset:
    missing = [name for name in FASHION_MNIST_FILES.values() if not (directory / name).is_file()]
    if missing:
        raise DatasetError(
            f"Fashion-MNIST files are missing from {directory} ({', '.join(missing)}). "
            "To fix this, run 'apt-get install -y dataset-fashion-mnist' "
            "(or set FASHION_MNIST_DIR to a folder holding the IDX files)."
        )
    stamps = tuple((directory / name).stat().st_mtime_ns for name in FASHION_MNIST_FILES.values())
    return _fashion_mnist(directory, input_spec, seed, stamps)


@functools.lru_cache(maxsize=2)
def _fashion_mnist(directory: Path, input_spec: InputSpec, seed: int,
                   stamps: tuple[int, ...]) -> Dataset:
    """Kept per process (``stamps``: the files' modification times, so a replaced file is
    read again): a simulation, a comparison and a retraining each load the dataset, and
    decompressing and fingerprinting it takes ~0.4 s. Its arrays are read-only, so no
    caller can change what the next one gets."""
    arrays = {key: read_idx(directory / name) for key, name in FASHION_MNIST_FILES.items()}
    full_train = Split(arrays["train_images"][..., None], arrays["train_labels"].astype(np.int64))
    test = Split(arrays["test_images"][..., None], arrays["test_labels"].astype(np.int64))
    if input_spec != InputSpec(28, 28, 1):
        full_train = Split(_resize_all(full_train.images, input_spec), full_train.labels)
        test = Split(_resize_all(test.images, input_spec), test.labels)
    train, validation = _carve_validation(full_train, FASHION_MNIST_VALIDATION_SIZE, seed)
    split_spec = (f"train=train minus validation; validation={FASHION_MNIST_VALIDATION_SIZE} "
                  f"of train (seed {seed}); test=t10k")
    for split in (train, validation, test):
        assert isinstance(split.images, np.ndarray)  # in memory: this source's arrays
        split.images.setflags(write=False)
        split.labels.setflags(write=False)
    return _make_dataset("fashion_mnist", FASHION_MNIST_CLASSES, input_spec,
                         train, validation, test, split_spec)


# --- folder:<path> --------------------------------------------------------------------

def _load_folder(spec: str, input_spec: InputSpec, seed: int) -> Dataset:
    root = Path(spec[len("folder:"):]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist. "
                           "To fix this, give a folder with one subfolder per class.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(f"dataset folder {root} has {len(class_dirs)} class subfolder(s). "
                           "To fix this, put each class's images in its own subfolder (at least 2).")
    rng = np.random.default_rng(seed)
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "validation": ([], []),
                                           "test": ([], [])}
    # Only the file list is read here; images are decoded when a split is used.
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in FOLDER_IMAGE_SUFFIXES)
        if len(files) < 3:
            raise DatasetError(f"class folder {class_dir} has {len(files)} JPEG/PNG images. "
                               "To fix this, give every class at least 3 images.")
        files = [files[i] for i in rng.permutation(len(files))]
        n_holdout = max(1, int(round(len(files) * FOLDER_HOLDOUT_FRACTION)))
        assignment = {"validation": files[:n_holdout], "test": files[n_holdout:2 * n_holdout],
                      "train": files[2 * n_holdout:]}
        for split_name, split_files in assignment.items():
            parts[split_name][0].extend(split_files)
            parts[split_name][1].extend([label] * len(split_files))
    splits = {name: Split(FolderImages(files, input_spec), np.asarray(labels, dtype=np.int64))
              for name, (files, labels) in parts.items()}
    split_spec = (f"per class, shuffled with seed {seed}: {FOLDER_HOLDOUT_FRACTION:.0%} validation, "
                  f"{FOLDER_HOLDOUT_FRACTION:.0%} test, rest train")
    return _make_dataset(spec, [d.name for d in class_dirs], input_spec,
                         splits["train"], splits["validation"], splits["test"], split_spec)


# --- tfds:<name>[:<train>|<test>] ----------------------------------------------------

def parse_tfds_spec(spec: str) -> tuple[str, str | None, str | None]:
    """``tfds:name[:train|test]`` -> (name, train split or None, test split or None)."""
    body = spec[len("tfds:"):]
    name, _, splits = body.partition(":")
    if not _TFDS_NAME.match(name) or ".." in name:
        raise DatasetError(f"invalid TFDS dataset name {name!r}. To fix this, use a catalog "
                           "name such as 'tf_flowers' or 'name/config' (lowercase letters, "
                           "digits and '_'; no path separators beyond the config's '/', "
                           "no '..').")
    if not splits:
        return name, None, None
    train, sep, test = splits.partition("|")
    if not sep or not train or not test:
        raise DatasetError(f"bad TFDS split spec {splits!r}. To fix this, write "
                           "'<train split>|<test split>', e.g. 'train[:80%]|train[80%:]'.")
    return name, train, test


def _load_tfds(spec: str, input_spec: InputSpec, seed: int) -> Dataset:
    import tensorflow_datasets as tfds  # heavy; only needed for this source

    name, train_split, test_split = parse_tfds_spec(spec)
    try:
        builder = tfds.builder(name)
    except Exception as error:  # TFDS raises several types for unknown names
        raise DatasetError(f"TFDS has no dataset {name!r} ({error}). "
                           "To fix this, pick a name from the TFDS catalog.") from None
    try:
        builder.download_and_prepare()
    except Exception as error:  # network errors surface as many types
        raise DatasetError(
            f"could not download TFDS dataset {name!r} ({type(error).__name__}). To fix this, "
            "run once on a machine with network access, or copy a prepared "
            "~/tensorflow_datasets folder here."
        ) from None
    available = set(builder.info.splits.keys())
    if train_split is None:
        if {"train", "test"} <= available:
            train_split, test_split = "train", "test"
        else:
            train_split, test_split = "train[:80%]", "train[80%:]"
    label_feature = builder.info.features[builder.info.supervised_keys[1]] \
        if builder.info.supervised_keys else None
    if label_feature is None or not hasattr(label_feature, "names"):
        raise DatasetError(f"TFDS dataset {name!r} has no (image, label) pair. "
                           "To fix this, choose an image classification dataset.")
    loaded = {}
    for split_name, split in (("train", train_split), ("test", test_split)):
        images, labels = [], []
        for image, label in tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True)):
            images.append(resize_to_spec(np.asarray(image, dtype=np.uint8), input_spec))
            labels.append(int(label))
        if not images:
            raise DatasetError(f"TFDS split {split!r} of {name!r} is empty. "
                               "To fix this, choose a split that has examples.")
        loaded[split_name] = Split(np.stack(images), np.asarray(labels, dtype=np.int64))
    n_val = max(1, int(len(loaded["train"]) * TFDS_VALIDATION_FRACTION))
    train, validation = _carve_validation(loaded["train"], n_val, seed)
    split_spec = (f"train={train_split} minus validation; validation={n_val} of it "
                  f"(seed {seed}); test={test_split}")
    return _make_dataset(spec, label_feature.names, input_spec,
                         train, validation, loaded["test"], split_spec)


def limit_dataset(dataset: Dataset, train: int | None = None,
                  evaluation: int | None = None) -> Dataset:
    """The first ``train`` training and ``evaluation`` validation/test examples.

    For quick runs and tests; the limits are recorded in the split spec and
    therefore in the fingerprint.
    """
    if train is None and evaluation is None:
        return dataset
    train_split = dataset.train.take(train) if train else dataset.train
    validation = dataset.validation.take(evaluation) if evaluation else dataset.validation
    test = dataset.test.take(evaluation) if evaluation else dataset.test
    split_spec = f"{dataset.split_spec}; limited to first {train or 'all'} train, " \
                 f"{evaluation or 'all'} validation/test"
    return _make_dataset(dataset.name, dataset.class_names, dataset.input_spec,
                         train_split, validation, test, split_spec)


def load_version_dataset(metadata: VersionMetadata, fashion_mnist_dir: Path) -> Dataset:
    """The dataset a version was trained on: its spec, input size and split seed, reloaded
    (without any size limits; callers that need the recorded sizes apply them), its
    classes numbered as the version's outputs are (a model trained elsewhere may order
    them otherwise than the dataset)."""
    return in_output_order(load_dataset(metadata.dataset.name, metadata.spec,
                                        fashion_mnist_dir=fashion_mnist_dir,
                                        seed=metadata.seed), list(metadata.class_names))


def in_output_order(dataset: Dataset, labels: list[str]) -> Dataset:
    """The dataset with its class indices renumbered to a model's output order."""
    if list(dataset.class_names) == labels:
        return dataset
    if sorted(labels) != sorted(dataset.class_names):
        raise DatasetError(
            f"the labels ({', '.join(labels)}) are not the dataset's classes "
            f"({', '.join(dataset.class_names)}). To fix this, give labels naming the "
            "dataset's classes in the model's output order, or a dataset with those classes.")
    index = np.asarray([labels.index(name) for name in dataset.class_names], np.int64)

    def renumbered(split: Split) -> Split:
        return Split(split.images, index[split.labels])

    return replace(dataset, class_names=tuple(labels), train=renumbered(dataset.train),
                   validation=renumbered(dataset.validation), test=renumbered(dataset.test))


def traffic_pool(test: Split) -> Split:
    """The first half of the test split: the only images simulations stream as traffic.

    The second half (``core.ml.comparison.comparison_holdout``) is never sent, so a
    model retrained on logged traffic is compared on images it has not seen.
    """
    return Split(test.images[:len(test) // 2], test.labels[:len(test) // 2])
