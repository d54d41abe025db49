"""Sets of uint8 images [N, h, w, c] that are read or made when used, a batch at a time:
a folder's photos (``FolderImages``), a subset or a concatenation of other sets. Whatever
works through a whole split (training, evaluation, the parity check, exports) takes
``Images``, an array or one of these, and reads it with ``batches``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from core.errors import DatasetError, ImageError
from core.ml.images import InputSpec, decode_image, resize_to_spec


class LazyImages:
    """uint8 images [N, h, w, c] read or made when used, one at a time (``image``):
    indexing with a number gives that image; with a slice or an index array, the lazy
    subset; ``np.asarray`` reads them all (for subsets known to be small: a batch)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, spec: InputSpec):
        self.spec = spec

    def __len__(self) -> int:
        raise NotImplementedError

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.spec.height, self.spec.width, self.spec.channels)

    @overload
    def __getitem__(self, key: int | np.integer) -> np.ndarray: ...

    @overload
    def __getitem__(self, key: slice | np.ndarray) -> "LazyImages": ...

    def __getitem__(self, key: int | np.integer | slice | np.ndarray
                    ) -> "np.ndarray | LazyImages":
        if isinstance(key, (int, np.integer)):
            return self.image(int(key) % len(self) if key < 0 else int(key))
        index = np.arange(len(self))[key]
        return self.subset(index)

    def subset(self, index: np.ndarray) -> "LazyImages":
        return Subset(self, index)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.image(i)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if not len(self):
            return np.zeros(self.shape, dtype or self.dtype)
        stacked = np.stack(list(self))
        return stacked if dtype is None else stacked.astype(dtype)


class FolderImages(LazyImages):
    """A folder split's images: the file list; each file decoded and resized to ``spec``
    when used."""

    def __init__(self, files: Sequence[Path], spec: InputSpec):
        super().__init__(spec)
        self.files = tuple(files)

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> np.ndarray:
        return resize_to_spec(decode_file(self.files[i]), self.spec)

    def subset(self, index: np.ndarray) -> "FolderImages":
        return type(self)([self.files[i] for i in index], self.spec)


class Subset(LazyImages):
    """Some of another set's images, in the order of ``index``."""

    def __init__(self, base: "Images", index: np.ndarray):
        super().__init__(InputSpec(*base.shape[1:4]))
        self.base, self.index = base, np.asarray(index, np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def image(self, i: int) -> np.ndarray:
        return np.asarray(self.base[int(self.index[i])])


class Concatenated(LazyImages):
    """Several image sets end to end (the retraining mix), none copied."""

    def __init__(self, parts: Sequence["Images"], spec: InputSpec):
        super().__init__(spec)
        self.parts = [part for part in parts if len(part)]
        self.starts = np.cumsum([0] + [len(part) for part in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def image(self, i: int) -> np.ndarray:
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return np.asarray(self.parts[part][i - int(self.starts[part])])


# uint8 [N, H, W, C] in memory, or read (a folder's) or made (augmented) when used.
Images = np.ndarray | LazyImages


def batches(images: Images, size: int = 256) -> Iterator[np.ndarray]:
    """``images`` in order, ``size`` at a time, as uint8 arrays: how a whole split is
    read without holding it (a folder's) in memory."""
    for start in range(0, len(images), size):
        yield np.asarray(images[start:start + size])


def decode_file(path: Path) -> np.ndarray:
    try:
        return decode_image(path.read_bytes(), max_bytes=1 << 30, max_pixels=100_000_000).pixels
    except ImageError as error:
        raise DatasetError(f"cannot read {path}: {error}") from None


