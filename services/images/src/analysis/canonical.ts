/** A greyscale picture, one value (0-255) per pixel, row by row. */
export interface Grey {
  width: number;
  height: number;
  pixels: Float32Array | Uint8Array;
}

/** The two square views of a picture that signatures compare (see Signature). */
export interface Views {
  content: Uint8Array;
  frame: Uint8Array;
}

/**
 * How far the content view reaches from the content's centre, in radii of gyration: an MNIST
 * digit's radius is about 5 px, so 2.4 of them hold the whole stroke with a little margin.
 */
const REACH = 2.4;
/** Deviations from the background under this share of the largest are noise (JPEG ringing, grain, gradients). */
const NOISE = 0.25;

/** The median of the outermost ring of pixels: the background, where the picture has one. */
function borderMedian({ width, height, pixels }: Grey): number {
  const ring: number[] = [];
  for (let x = 0; x < width; x++) ring.push(pixels[x] as number, pixels[(height - 1) * width + x] as number);
  for (let y = 1; y < height - 1; y++) ring.push(pixels[y * width] as number, pixels[y * width + width - 1] as number);
  ring.sort((a, b) => a - b);
  return ring[ring.length >> 1] ?? 0;
}

/** The taps of one output pixel on one axis: the weights of source indices first, first + 1, ... */
interface Taps {
  first: number;
  weights: Float64Array;
}

/**
 * The taps of one axis of a resampling, for each output index. Each output pixel averages `n`
 * bilinear samples spread over the source span it covers, n as many as the source pixels it covers.
 */
function taps(start: number, span: number, out: number): Taps[] {
  const step = span / out;
  const n = Math.max(1, Math.ceil(step));
  const result: Taps[] = [];
  for (let o = 0; o < out; o++) {
    // the samples' positions in pixel-centre coordinates
    const firstX = start + (o + 0.5 / n) * step - 0.5;
    const lastX = start + (o + (n - 0.5) / n) * step - 0.5;
    const first = Math.floor(firstX);
    const weights = new Float64Array(Math.floor(lastX) - first + 2);
    for (let k = 0; k < n; k++) {
      const x = start + (o + (k + 0.5) / n) * step - 0.5;
      const x0 = Math.floor(x);
      const f = x - x0;
      weights[x0 - first] = (weights[x0 - first] as number) + (1 - f) / n;
      weights[x0 - first + 1] = (weights[x0 - first + 1] as number) + f / n;
    }
    result.push({ first, weights });
  }
  return result;
}

/**
 * The rectangle (left, top, w, h) of the picture, in pixel-edge coordinates, resampled to outWidth x
 * outHeight: each output pixel averages a grid of bilinear samples as dense as the source pixels it
 * covers, so shrinking averages and enlarging interpolates; outside the picture is `outside`.
 * Separable: along the rows first, then down the columns.
 */
export function resample(
  grey: Grey,
  left: number,
  top: number,
  w: number,
  h: number,
  outWidth: number,
  outHeight: number,
  outside: number,
): Float32Array {
  const { width, height, pixels } = grey;
  const columns = taps(left, w, outWidth);
  const rows = taps(top, h, outHeight);
  // the source rows the output needs, each resampled across (row -1 and beyond: outside)
  const firstRow = Math.max(0, (rows[0] as Taps).first);
  const lastRow = Math.min(
    height - 1,
    (rows[outHeight - 1] as Taps).first + (rows[outHeight - 1] as Taps).weights.length - 1,
  );
  const across = new Float32Array(Math.max(0, lastRow - firstRow + 1) * outWidth);
  for (let y = firstRow; y <= lastRow; y++) {
    const row = y * width;
    const at = (y - firstRow) * outWidth;
    for (let ox = 0; ox < outWidth; ox++) {
      const { first, weights } = columns[ox] as Taps;
      let sum = 0;
      for (let k = 0; k < weights.length; k++) {
        const x = first + k;
        sum += (weights[k] as number) * (x < 0 || x >= width ? outside : (pixels[row + x] as number));
      }
      across[at + ox] = sum;
    }
  }
  const out = new Float32Array(outWidth * outHeight);
  for (let oy = 0; oy < outHeight; oy++) {
    const { first, weights } = rows[oy] as Taps;
    for (let ox = 0; ox < outWidth; ox++) {
      let sum = 0;
      for (let k = 0; k < weights.length; k++) {
        const y = first + k;
        sum +=
          (weights[k] as number) *
          (y < 0 || y >= height ? outside : (across[(y - firstRow) * outWidth + ox] as number));
      }
      out[oy * outWidth + ox] = sum;
    }
  }
  return out;
}

/** Values stretched to 0-255 over their own range, so brightness and contrast do not count; flat gives all 0. */
export function stretch(values: Float32Array): Uint8Array {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const out = new Uint8Array(values.length);
  if (!(max - min > 1e-6)) return out;
  const scale = 255 / (max - min);
  for (let i = 0; i < values.length; i++) out[i] = Math.round(((values[i] as number) - min) * scale);
  return out;
}

/**
 * The content view and the frame view of a picture (see Signature). The content is what differs
 * from the background (the border's median) by more than the noise; its centre of mass and radius
 * of gyration place the view, so translation, padding, a crop of background and resizing leave it
 * nearly unchanged. A picture with no such content gives its frame view for both.
 */
export function canonicalViews(grey: Grey, side: number): Views {
  const { width, height, pixels } = grey;
  const background = borderMedian(grey);
  let largest = 0;
  for (const p of pixels) largest = Math.max(largest, Math.abs(p - background));
  const floor = largest * NOISE;
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const w = Math.abs((pixels[y * width + x] as number) - background) - floor;
      if (w <= 0) continue;
      mass += w;
      mx += w * (x + 0.5);
      my += w * (y + 0.5);
    }
  }
  const frame = stretch(resample(grey, 0, 0, width, height, side, side, background));
  if (mass === 0) return { content: frame, frame };
  const cx = mx / mass;
  const cy = my / mass;
  let spread = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const w = Math.abs((pixels[y * width + x] as number) - background) - floor;
      if (w <= 0) continue;
      spread += w * ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2);
    }
  }
  const radius = Math.max(Math.sqrt(spread / mass), 0.5);
  const half = REACH * radius;
  const content = stretch(resample(grey, cx - half, cy - half, 2 * half, 2 * half, side, side, background));
  return { content, frame };
}
