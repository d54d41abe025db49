"""Builds awkward image files in memory, for tests (no binary blobs committed)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient_rgb(width: int = 40, height: int = 30) -> Image.Image:
    """A colour gradient whose orientation is easy to check after rotation."""
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, axis=1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 128)], axis=-1))


def jpeg_with_orientation(image: Image.Image, orientation: int, quality: int = 95) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation tag
    return save(image, "JPEG", exif=exif.tobytes(), quality=quality)


def animated_gif(first: int, second: int, size: int = 16) -> bytes:
    frames = [Image.new("L", (size, size), first), Image.new("L", (size, size), second)]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb's header)."""
    real = save(Image.new("L", (1, 1)), "PNG")
    ihdr_data = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + ihdr_data + struct.pack(
        ">I", zlib.crc32(b"IHDR" + ihdr_data) & 0xFFFFFFFF)
    return real[:8] + ihdr + real[8 + 25:]


def sixteen_bit_gray_png(value: int, size: int = 8) -> bytes:
    array = np.full((size, size), value, dtype=np.uint16)
    return save(Image.fromarray(array), "PNG")


BOMB_SIDE = 6324  # 39,992,976 pixels: just under MAX_IMAGE_PIXELS' default of 40,000,000


def webp_bomb(side: int = BOMB_SIDE) -> bytes:
    """A lossless WebP of one colour: ~1.6 KB that decodes to side x side RGB pixels
    (120 MB and 1.2 s at the default side). Valid, and under the per-image pixel cap."""
    return save(Image.new("RGB", (side, side), (10, 20, 30)), "WEBP", lossless=True)
