"""The awkward-upload corpus: every kind of file a user might send, built by code.

No binary blobs are committed: each file is generated from one real picture (a
Fashion-MNIST test image) at test time. ``python -m tests.upload_corpus OUT_DIR``
writes them all to a folder, to try by hand in the dashboard or the CLI.

Each case says what a correct server does with it:
``answer``  a prediction (any class);
``same``    a prediction with the same label as the case named in ``same_as``
            (the same picture in a plain format, or upright without EXIF);
``error``   one clear message containing ``message`` (and "To fix this").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.images_factory import jpeg_with_orientation, png_header_claiming, save

REFERENCE = "plain_png"
PHONE_SIZE = (3024, 4032)  # a 12-megapixel phone photo, portrait (width, height)
UPLOAD_LIMIT_BYTES = 20 * 1024 * 1024  # Config.max_upload_bytes and server.maxUploadSize


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    data: bytes
    expect: str  # "answer", "same" or "error"
    same_as: str | None = None
    message: str | None = None  # part of the one error message

    def __repr__(self) -> str:  # pytest ids and failure output: not megabytes of bytes
        return f"Case({self.name}, {len(self.data):,} bytes, expect {self.expect})"


def build(base: np.ndarray) -> list[Case]:
    """The corpus from one picture: uint8 [28, 28] or [28, 28, 1] grayscale.

    The picture is enlarged to 280 x 280 first, so lossy formats keep its shape
    at the model's input size.
    """
    gray = Image.fromarray(base.reshape(base.shape[0], base.shape[1])).resize(
        (280, 280), Image.Resampling.BILINEAR)
    rgb = gray.convert("RGB")
    other_frame = Image.eval(gray, lambda value: 255 - value)
    upright_phone = gray.resize((PHONE_SIZE[0], PHONE_SIZE[0]), Image.Resampling.BILINEAR)
    phone = Image.new("L", PHONE_SIZE, 0)
    phone.paste(upright_phone, (0, (PHONE_SIZE[1] - PHONE_SIZE[0]) // 2))
    phone = phone.convert("RGB")
    # Orientation 6 tells viewers to turn the stored pixels 90° clockwise, so a phone
    # held upright stores them turned 90° counter-clockwise (PIL's ROTATE_90).
    stored_sideways = phone.transpose(Image.Transpose.ROTATE_90)
    truncated = save(rgb, "JPEG", quality=95)
    palette = gray.quantize(colors=64)
    background_index = palette.getpixel((0, 0))  # the black background
    sixteen_bit = Image.fromarray(np.asarray(gray, np.uint16) * 257)
    opaque_alpha = Image.merge("LA", (gray, Image.new("L", gray.size, 255)))
    rng = np.random.default_rng(0)
    # Noise does not compress: a valid BMP just over the upload limit.
    over_limit = Image.fromarray(rng.integers(0, 256, (2600, 2700, 3), dtype=np.uint8))
    return [
        Case(REFERENCE, "garment.png", save(gray, "PNG"), "answer"),
        Case("zero_bytes", "empty.png", b"", "error", message="the file is empty"),
        Case("text_named_png", "notes.png", b"shopping list: eggs, milk, bread\n" * 20,
             "error", message="not an image"),
        Case("html_named_jpg", "page.jpg", b"<!DOCTYPE html><html><body><h1>Hi</h1>"
             b"<img src='x.jpg'></body></html>", "error", message="not an image"),
        Case("svg", "drawing.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/'
             b'2000/svg" width="100" height="100"><circle cx="50" cy="50" r="40"/></svg>',
             "error", message="SVG"),
        Case("truncated_jpeg", "cut.jpg", truncated[:len(truncated) // 2], "error",
             message="truncated or corrupt"),
        Case("png_bomb_header", "bomb.png", png_header_claiming(60_000, 60_000), "error",
             message="pixels"),
        Case("huge_jpeg", "huge.jpg", save(Image.new("L", (8000, 6000), 90), "JPEG"),
             "error", message="8000 x 6000 pixels"),
        Case("cmyk_jpeg", "cmyk.jpg", save(rgb.convert("CMYK"), "JPEG", quality=95), "same",
             same_as=REFERENCE),
        Case("png_16_bit", "deep.png", save(sixteen_bit, "PNG"), "same", same_as=REFERENCE),
        Case("palette_png_transparent", "palette.png",
             save(palette, "PNG", transparency=background_index), "answer"),
        Case("gray_with_alpha", "alpha.png", save(opaque_alpha, "PNG"), "same",
             same_as=REFERENCE),
        Case("animated_gif", "anim.gif", save(gray, "GIF", save_all=True,
                                              append_images=[other_frame], duration=100,
                                              loop=0), "same", same_as=REFERENCE),
        Case("webp", "garment.webp", save(rgb, "WEBP", lossless=True), "same",
             same_as=REFERENCE),
        Case("bmp", "garment.bmp", save(rgb, "BMP"), "same", same_as=REFERENCE),
        Case("tiff", "garment.tiff", save(rgb, "TIFF", compression="tiff_deflate"), "same",
             same_as=REFERENCE),
        Case("one_pixel", "dot.png", save(Image.new("L", (1, 1), 200), "PNG"), "answer"),
        Case("strip_4000x12", "strip.png", save(gray.resize((4000, 12)), "PNG"), "answer"),
        Case("phone_upright", "phone-upright.jpg", save(phone, "JPEG", quality=90), "answer"),
        Case("phone_exif_orientation_6", "phone-rotated.jpg",
             jpeg_with_orientation(stored_sideways, 6, quality=90), "same",
             same_as="phone_upright"),
        Case("over_upload_limit", "big.bmp", save(over_limit, "BMP"), "error",
             message="over the 20 MB limit"),
    ]


def by_name(cases: list[Case]) -> dict[str, Case]:
    return {case.name: case for case in cases}


def fashion_base() -> np.ndarray:
    """The first Fashion-MNIST test image (an ankle boot), from Debian's package."""
    from core.config import load_config
    from core.ml.data import read_idx

    return read_idx(load_config({}).fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.upload_corpus",
                                     description="Write the awkward-upload corpus to a folder.")
    parser.add_argument("out", type=Path, help="folder to write the files into")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for case in build(fashion_base()):
        (out / case.filename).write_bytes(case.data)
        print(f"{case.filename:<22} {len(case.data):>11,} bytes  {case.name}: expect "
              f"{case.expect}{' ' + (case.same_as or case.message or '') if case.expect != 'answer' else ''}")


if __name__ == "__main__":
    main()
