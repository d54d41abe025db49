import numpy as np
import pytest
from PIL import Image

from core.errors import ImageError
from core.ml.images import InputSpec, decode_image, encode_png, preprocess, preprocess_batch
from tests import images_factory as factory

LIMITS = dict(max_bytes=5_000_000, max_pixels=10_000_000)


def decode(data: bytes):
    return decode_image(data, **LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_common_formats_decode_to_rgb(fmt):
    decoded = decode(factory.save(factory.gradient_rgb(), fmt))
    assert decoded.pixels.shape == (30, 40, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.format == fmt
    # Lossy formats move values a little; the gradient must survive.
    assert decoded.pixels[15, 39, 0] > decoded.pixels[15, 0, 0] + 200


def test_grayscale_stays_single_channel():
    decoded = decode(factory.save(Image.new("L", (5, 7), 77), "PNG"))
    assert decoded.pixels.shape == (7, 5, 1)
    assert (decoded.pixels == 77).all()


def test_exif_orientation_is_applied():
    upright = factory.gradient_rgb(40, 30)
    decoded = decode(factory.jpeg_with_orientation(upright, 6))  # 6 = rotate 90° clockwise
    assert decoded.pixels.shape == (40, 30, 3)
    assert decoded.original_size == (40, 30)
    # Rotating the stored image clockwise moves its left edge (dark red) to the top.
    assert decoded.pixels[0, :, 0].mean() < decoded.pixels[-1, :, 0].mean() - 100


def test_gif_uses_first_frame():
    decoded = decode(factory.animated_gif(first=30, second=220))
    assert decoded.pixels.mean() == pytest.approx(30, abs=2)


def test_rgba_transparency_is_flattened_onto_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    decoded = decode(factory.save(image, "PNG"))
    assert decoded.pixels.shape == (4, 4, 3)
    assert (decoded.pixels == 255).all()


def test_palette_with_transparency():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    decoded = decode(factory.save(image, "PNG", transparency=0))
    assert (decoded.pixels == 255).all()  # the transparent index becomes white


def test_grayscale_with_alpha():
    image = Image.new("LA", (3, 3), (50, 255))
    decoded = decode(factory.save(image, "PNG"))
    assert decoded.pixels.shape == (3, 3, 1)
    assert (decoded.pixels == 50).all()


def test_cmyk_jpeg_becomes_rgb():
    image = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    decoded = decode(factory.save(image, "JPEG"))
    assert decoded.pixels.shape == (8, 8, 3)
    red, green, blue = decoded.pixels[4, 4]
    assert red > 200 and green < 60 and blue < 60


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    decoded = decode(factory.sixteen_bit_gray_png(65535))
    assert decoded.pixels.shape[-1] == 1
    assert (decoded.pixels == 255).all()
    assert (decode(factory.sixteen_bit_gray_png(257 * 100)).pixels == 100).all()


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am text", "not an image"),
    (b"<html><body>hi</body></html>", "not an image"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
])
def test_non_images_get_one_clear_error(data, message):
    with pytest.raises(ImageError, match=message) as error:
        decode(data)
    assert "To fix this" in str(error.value)


def test_truncated_jpeg():
    data = factory.save(factory.gradient_rgb(200, 200), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode(data[: len(data) // 2])


def test_decompression_bomb_header_is_refused_before_decoding():
    with pytest.raises(ImageError, match="more pixels than is safe"):
        decode(factory.png_header_claiming(60000, 60000))


def test_image_over_the_pixel_limit_is_refused_with_its_size():
    with pytest.raises(ImageError, match="5000 x 4000 pixels, over the limit of 10,000,000"):
        decode(factory.png_header_claiming(5000, 4000))


def test_oversized_file_is_refused():
    with pytest.raises(ImageError, match="over the 0 MB limit"):
        decode_image(factory.save(factory.gradient_rgb(), "PNG"), max_bytes=10, max_pixels=10**6)


def test_preprocess_converts_channels_resizes_and_scales():
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> luma 0.299 * 255 = 76
    out = preprocess(rgb, InputSpec(28, 28, 1))
    assert out.shape == (28, 28, 1) and out.dtype == np.float32
    assert out.max() == pytest.approx(76 / 255, abs=1 / 255)
    gray = np.full((28, 28, 1), 255, np.uint8)
    assert preprocess(gray, InputSpec(32, 32, 3)).shape == (32, 32, 3)
    assert preprocess(gray, InputSpec(28, 28, 1)).max() == 1.0


def test_batch_preprocessing_equals_single_image_preprocessing():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    spec = InputSpec(28, 28, 1)
    batch = preprocess_batch(images, spec)
    assert np.array_equal(batch, np.stack([preprocess(i, spec) for i in images]))
    resized = preprocess_batch(images, InputSpec(14, 14, 3))
    assert resized.shape == (5, 14, 14, 3)


def test_png_round_trip():
    pixels = np.random.default_rng(1).integers(0, 256, (6, 9, 1), dtype=np.uint8)
    assert np.array_equal(decode(encode_png(pixels)).pixels, pixels)
