// The server's preprocessing, in the browser: core.ml.images.preprocess does
// Image.convert("L"|"RGB") then Image.resize(BILINEAR) in Pillow, then / 255. Pillow's
// bilinear resize is a convolution whose support grows with the reduction (it
// antialiases), in two passes with 8-bit rounding between them; a canvas's drawImage
// smooths differently, so its pixels (and some answers) would differ. This is Pillow's
// arithmetic (libImaging/Resample.c, 8 bits per channel), so the device sees the
// server's pixels exactly for any image both decode alike (PNG, WebP; JPEG decoders
// may differ by a level here and there).

const PRECISION_BITS = 32 - 8 - 2;

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 1.0 * filterScale;
  const kSize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * kSize);
  const row = new Float64Array(kSize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = Math.max(0, 1.0 - Math.abs((x + xmin - center + 0.5) / filterScale));
      row[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0.0 ? row[x] / total : row[x];
      weights[xx * kSize + x] = Math.trunc(w < 0 ? -0.5 + w * (1 << PRECISION_BITS)
                                                 : 0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return {bounds, weights, kSize};
}

function clip8(sum) {
  const value = sum >> PRECISION_BITS;
  return value < 0 ? 0 : value > 255 ? 255 : value;
}

// Pillow's ImagingResampleHorizontal_8bpc over `rows` rows from `first`.
function horizontalPass(src, width, channels, coeffs, outWidth, first, rows) {
  const {bounds, weights, kSize} = coeffs;
  const out = new Uint8Array(outWidth * rows * channels);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const line = (y + first) * width;
    for (let x = 0; x < outWidth; x++) {
      const min = bounds[x * 2], count = bounds[x * 2 + 1];
      for (let c = 0; c < channels; c++) {
        let sum = half;
        for (let k = 0; k < count; k++) {
          sum += src[(line + min + k) * channels + c] * weights[x * kSize + k];
        }
        out[(y * outWidth + x) * channels + c] = clip8(sum);
      }
    }
  }
  return out;
}

// Pillow's ImagingResampleVertical_8bpc; the source's rows start at source row `first`.
function verticalPass(src, width, channels, coeffs, outHeight, first) {
  const {bounds, weights, kSize} = coeffs;
  const out = new Uint8Array(width * outHeight * channels);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < outHeight; y++) {
    const min = bounds[y * 2] - first, count = bounds[y * 2 + 1];
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        let sum = half;
        for (let k = 0; k < count; k++) {
          sum += src[((min + k) * width + x) * channels + c] * weights[y * kSize + k];
        }
        out[(y * width + x) * channels + c] = clip8(sum);
      }
    }
  }
  return out;
}

// Pillow's ImagingResampleInner: the horizontal pass over only the rows the vertical
// pass reads, then the vertical pass; a pass whose size does not change is skipped.
export function resizeBilinear(src, width, height, channels, outWidth, outHeight) {
  const vertical = coefficients(height, outHeight);
  let pixels = src, first = 0;
  if (outWidth !== width) {
    first = vertical.bounds[0];
    const last = vertical.bounds[outHeight * 2 - 2] + vertical.bounds[outHeight * 2 - 1];
    pixels = horizontalPass(src, width, channels, coefficients(width, outWidth), outWidth,
                            first, last - first);
  }
  if (outHeight !== height) {
    pixels = verticalPass(pixels, outWidth, channels, vertical, outHeight, first);
  }
  return pixels;
}

// RGBA from a canvas -> 1 or 3 channels as Pillow converts: transparent pixels on white,
// gray as ITU-R 601-2 luma in Pillow's integer arithmetic.
export function toChannels(rgba, channels) {
  const count = rgba.length / 4;
  const out = new Uint8Array(count * channels);
  for (let i = 0; i < count; i++) {
    const a = rgba[i * 4 + 3];
    let [r, g, b] = [rgba[i * 4], rgba[i * 4 + 1], rgba[i * 4 + 2]];
    if (a !== 255) {  // Image.alpha_composite onto opaque white
      [r, g, b] = [r, g, b].map(v => {  // libImaging/AlphaComposite.c's arithmetic
        const t = (v * a + 255 * (255 - a)) * 128 + 0x4000;
        return (((t >> 8) + t) >> 8) >> 7;
      });
    }
    if (channels === 1) {
      out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    } else {
      out.set([r, g, b], i * 3);
    }
  }
  return out;
}

// A decoded image (ImageBitmap) -> uint8 pixels at the model's input size, as the server
// makes them (what the device logs) and the model's float input in [0, 1].
export function modelInput(bitmap, spec) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const plain = toChannels(rgba, spec.channels);
  const pixels = (bitmap.width === spec.width && bitmap.height === spec.height) ? plain
    : resizeBilinear(plain, bitmap.width, bitmap.height, spec.channels, spec.width, spec.height);
  const input = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) input[i] = pixels[i] / 255;
  return {pixels, input};
}
