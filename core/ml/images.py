"""Image decoding, validation and the one preprocessing function.

Training data and served uploads both pass through :func:`preprocess`, so the
model sees identical tensors for the same picture whichever way it arrived.
This module sits at the bottom of ``core``: data sources and serving use it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError
from core.registry.records import InputSpec  # the shape a version takes, as recorded


class ImageArray(Protocol):
    """uint8 [N, H, W, C] images: an array, or a folder's read when used
    (``core.ml.data.FolderImages``): a length, slices, and ``np.asarray``."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: Any) -> Any: ...

# JPEGs are decoded at the smallest built-in scale keeping both sides at least this.
DECODE_MIN_SIDE = 1024
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_FIX = "To fix this, upload a JPEG, PNG, WebP, BMP, GIF or TIFF photo."


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded to pixels.

    Attributes:
        pixels: uint8 array [H, W, 1] (grayscale sources) or [H, W, 3] (colour).
        original_size: (width, height) as stored in the file, before EXIF rotation and
            before any reduced-scale decoding.
        format: The container format Pillow detected, e.g. "PNG".
    """

    pixels: np.ndarray
    original_size: tuple[int, int]
    format: str


@dataclass(frozen=True)
class OpenedImage:
    """An upload whose header is read and checked: its size is known, no pixel is decoded.

    What decoding it will cost is known here, before any of it is paid: front ends
    reserve ``decoded_pixels`` of their budget (``core.app.uploads``) first.
    """

    data: bytes
    format: str
    original_size: tuple[int, int]  # (width, height) as stored in the file
    decoded_size: tuple[int, int]  # what the decoder produces (JPEG: at reduced scale)

    @property
    def decoded_pixels(self) -> int:
        return self.decoded_size[0] * self.decoded_size[1]

    def decode(self, max_pixels: int) -> DecodedImage:
        """Decodes the pixels (see :func:`decode_image`)."""
        with _unreadable(self.data):
            image, _ = _open(self.data, max_pixels)
            image.seek(0)  # first frame of GIF/WebP animations and multi-page TIFF
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # a copy would double the memory
            if image.mode in _REDUCIBLE_MODES:  # shrink before any conversion copies it
                image = image.reduce(_working_factor(image.size))
            pixels = _to_8bit_array(image)
            pixels = reduce_to_working_size(pixels)  # modes Image.reduce does not take
        return DecodedImage(pixels=pixels, original_size=self.original_size,
                            format=self.format)


def open_image(data: bytes, *, max_bytes: int, max_pixels: int) -> OpenedImage:
    """Reads and checks an upload's header only (cheap whatever the file claims).

    Raises:
        ImageError: empty, oversized, not an image, or too many pixels.
    """
    if len(data) == 0:
        raise ImageError(f"the file is empty. {_FIX}")
    check_upload_size(len(data), max_bytes)
    with _unreadable(data):
        image, stored_size = _open(data, max_pixels)
        return OpenedImage(data, image.format or "", stored_size, image.size)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Decodes an uploaded file in memory, refusing anything unsafe or unusable.

    Applies EXIF orientation, takes the first frame of animations, flattens
    transparency onto white, and reduces 16-bit, palette and CMYK images to
    8-bit grayscale or RGB. Large images are decoded at a reduced scale, their
    shorter side still at least ``DECODE_MIN_SIDE`` (JPEGs by their decoder, others
    by a whole factor after decoding: :func:`reduce_to_working_size`).

    Raises:
        ImageError: empty, oversized, not an image, too many pixels, or truncated.
    """
    return open_image(data, max_bytes=max_bytes, max_pixels=max_pixels).decode(max_pixels)


def _open(data: bytes, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """The image with its header checked and, for JPEG, the reduced decoding scale set;
    and its size as stored in the file."""
    image = Image.open(io.BytesIO(data))
    file_format = image.format or ""
    if file_format not in SUPPORTED_FORMATS:
        raise ImageError(f"{file_format} files are not supported. {_FIX}")
    width, height = image.size
    # Image.open reads only the header: refuse huge images before decoding pixels.
    if width * height > max_pixels:
        raise ImageError(
            f"the image is {width} x {height} pixels, over the limit of "
            f"{max_pixels:,} pixels. To fix this, resize the photo before uploading "
            "(or raise MAX_IMAGE_PIXELS)."
        )
    if file_format == "JPEG":
        # JPEG can decode at 1/2, 1/4 or 1/8 scale for a fraction of the work: a
        # 12-megapixel phone photo takes ~20 ms instead of ~130 ms, and nothing
        # downstream (a 28x28 model, a 1024-pixel display) needs more.
        image.draft(image.mode, (DECODE_MIN_SIDE, DECODE_MIN_SIDE))
    return image, (width, height)


@contextmanager
def _unreadable(data: bytes) -> Iterator[None]:
    """Turns whatever Pillow raises on a bad file into one ImageError with the fix."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"the file is not an image Pillow can read{_looks_like(data)}. "
                         f"{_FIX}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            "the image claims more pixels than is safe to decode. "
            "To fix this, resize the photo before uploading."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(
            f"the image data is truncated or corrupt ({error}). "
            "To fix this, export the photo again and re-upload it."
        ) from None


# Modes Pillow's Image.reduce takes (palette, 1-bit and 16-bit images are converted first).
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK")


def _working_factor(size: tuple[int, int]) -> int:
    """The largest whole factor that keeps the shorter side at least DECODE_MIN_SIDE."""
    return max(1, min(size) // DECODE_MIN_SIDE)


def reduce_to_working_size(pixels: np.ndarray) -> np.ndarray:
    """Shrinks a decoded image by the largest whole factor that keeps its shorter side at
    least ``DECODE_MIN_SIDE`` (a box filter: every source pixel counts once), as the JPEG
    decoder does for JPEGs. A 6,324 x 6,324 image becomes 1,054 x 1,054 (3 MB instead of
    120 MB) before anything keeps it; nothing downstream needs more."""
    factor = _working_factor((pixels.shape[1], pixels.shape[0]))
    if factor < 2:
        return pixels
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels)
    reduced = np.asarray(image.reduce(factor))
    return reduced[:, :, None] if reduced.ndim == 2 else reduced


def check_upload_size(size: int, max_bytes: int) -> None:
    """Refuses an upload of ``size`` bytes over the limit (in MiB, as Streamlit counts)."""
    if size > max_bytes:
        raise ImageError(
            f"the file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit. "
            "To fix this, upload a smaller photo (or raise MAX_UPLOAD_BYTES)."
        )


def _looks_like(data: bytes) -> str:
    """What a file Pillow cannot read seems to be, so the message can say so."""
    head = data[:512].lstrip().lower()
    if b"<svg" in head:
        return " (it is an SVG drawing: vector files are not supported)"
    if head.startswith((b"<!doctype html", b"<html")):
        return " (it is an HTML page)"
    if head.isascii() and all(c >= 32 or c in b"\t\r\n" for c in head):
        return " (it is text)"
    return ""


def _to_8bit_array(image: Image.Image) -> np.ndarray:
    """Converts any Pillow mode to uint8 [H, W, 1] (grayscale) or [H, W, 3] (colour)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit and 32-bit grayscale: scale the full 16-bit range onto 0..255.
        values = np.asarray(image, dtype=np.float64)
        pixels = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return pixels[:, :, None]
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "PA":
        image = image.convert("RGBA")
        mode = image.mode
    if mode in ("RGBA", "LA", "RGBa", "La"):
        # Transparent pixels have no colour: show them on white, as image viewers do.
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        flattened = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
        if mode in ("LA", "La"):
            return np.asarray(flattened.convert("L"))[:, :, None]
        return np.asarray(flattened)
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"))[:, :, None]
    return np.asarray(image.convert("RGB"))


def resize_to_spec(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Converts channels and resizes a uint8 [H, W, C] image to ``spec`` (still uint8).

    The first half of :func:`preprocess`; data sources call it at load time to
    keep datasets small, and it is the identity on an image already at ``spec``.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    if (height, width, channels) == (spec.height, spec.width, spec.channels):
        return pixels
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
    image = image.convert("L" if spec.channels == 1 else "RGB")
    if image.size != (spec.width, spec.height):
        image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    resized = np.asarray(image)
    return resized[:, :, None] if spec.channels == 1 else resized


def preprocess(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The one preprocessing function: uint8 [H, W, C] -> float32 [h, w, c] in [0, 1].

    Converts channels (RGB -> luma or gray -> RGB), resizes to the model's
    input size, and scales to [0, 1]. Training and serving both call it.
    """
    return resize_to_spec(pixels, spec).astype(np.float32) / np.float32(255.0)


def preprocess_batch(images: ImageArray, spec: InputSpec) -> np.ndarray:
    """Applies :func:`preprocess` to uint8 [N, H, W, C] images -> float32 [N, h, w, c]
    (a folder's lazy images are read here: callers pass a batch, ``core.ml.data.batches``)."""
    pixels = np.asarray(images)
    if pixels.ndim == 4 and pixels.shape[1:] == (spec.height, spec.width, spec.channels):
        # Same arithmetic as preprocess() on an image already at spec, vectorised.
        return pixels.astype(np.float32) / np.float32(255.0)
    return np.stack([preprocess(image, spec) for image in pixels])


def decode_logged(pngs: list[bytes], spec: InputSpec) -> np.ndarray:
    """Images kept in the prediction log (``encode_logged``'s) as uint8 [N, h, w, c]
    at ``spec``'s size."""
    if not pngs:
        return np.zeros((0, spec.height, spec.width, spec.channels), np.uint8)
    return np.stack([resize_to_spec(decode_image(png, max_bytes=1 << 24,
                                                 max_pixels=1 << 24).pixels, spec)
                     for png in pngs])


# Logged images are lossless PNGs up to this many pixels (the 28x28 model's: ~0.1 ms,
# ~600 B), JPEGs at quality 95 (4:4:4) above it. Measured at 224x224 RGB on photos:
# PNG 11.1 ms and 77 KB per image, on every answered request; JPEG 0.2 ms and 27 KB,
# with a mean error of 1.4 of 255 levels, what a phone camera's own JPEG already has.
LOSSLESS_LOGGED_PIXELS = 128 * 128


def encode_logged(pixels: np.ndarray) -> bytes:
    """The image a prediction log row keeps, from uint8 [H, W, 1|3] pixels."""
    if pixels.shape[0] * pixels.shape[1] <= LOSSLESS_LOGGED_PIXELS:
        return encode_png(pixels)
    return _encode(pixels, format="JPEG", quality=95, subsampling=0)


def encode_png(pixels: np.ndarray) -> bytes:
    """Encodes uint8 [H, W, 1|3] pixels as PNG bytes."""
    return _encode(pixels, format="PNG")


def _encode(pixels: np.ndarray, **save: Any) -> bytes:
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, **save)
    return buffer.getvalue()


IMAGE_STATISTICS = ("brightness", "contrast", "sharpness")


def image_statistics(images: ImageArray) -> dict[str, np.ndarray]:
    """Per-image brightness, contrast and sharpness of uint8 [N, H, W, C] images.

    Computed at the model's input size (after ``resize_to_spec``) so that photos
    of any resolution compare with the training data on one scale:
    brightness = mean gray level, contrast = its standard deviation (both in
    [0, 1]), sharpness = variance of the 4-neighbour Laplacian of the gray image.
    Returns float32 arrays [N] keyed by ``IMAGE_STATISTICS``. Works through ``images``
    256 at a time (a folder's split is read, never held, and the float copy stays small).
    """
    if len(images) <= _STATISTICS_BATCH:
        return _statistics(np.asarray(images))
    chunks = [_statistics(np.asarray(images[i:i + _STATISTICS_BATCH]))
              for i in range(0, len(images), _STATISTICS_BATCH)]
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


_STATISTICS_BATCH = 256


def _statistics(images: np.ndarray) -> dict[str, np.ndarray]:
    # On every answered request: 0.2 ms at 224x224x3 written this way, 0.8 ms as a mean
    # over the channel axis and a five-temporary Laplacian (same values to 1e-6).
    channels = images.shape[-1]
    gray = images.astype(np.float32) @ np.full(channels, 1 / (255 * channels), np.float32)
    laplacian = 4 * gray[:, 1:-1, 1:-1]
    for shifted in (gray[:, :-2, 1:-1], gray[:, 2:, 1:-1], gray[:, 1:-1, :-2], gray[:, 1:-1, 2:]):
        laplacian -= shifted
    flat = gray.reshape(len(gray), -1)
    return {
        "brightness": flat.mean(axis=1),
        "contrast": flat.std(axis=1),
        "sharpness": laplacian.reshape(len(laplacian), -1).var(axis=1),
    }
