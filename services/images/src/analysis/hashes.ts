import { type Grey, resample } from './canonical.ts';
import { dhashOfPixels } from './dhash.ts';

function asGrey(view: Uint8Array, side: number): Grey {
  return { width: side, height: side, pixels: view };
}

/** 64 bits, first one highest, as an unsigned BigInt (built from two 32-bit halves: one BigInt, not 64). */
function pack(bits: boolean[]): bigint {
  let high = 0;
  let low = 0;
  for (let i = 0; i < 32; i++) high = (high * 2 + (bits[i] ? 1 : 0)) >>> 0;
  for (let i = 32; i < 64; i++) low = (low * 2 + (bits[i] ? 1 : 0)) >>> 0;
  return (BigInt(high) << 32n) | BigInt(low);
}

/** The 9x8 grid a difference hash compares: the picture shrunk by area averaging. */
function differenceGrid(grey: Grey): Float32Array {
  return resample(grey, 0, 0, grey.width, grey.height, 9, 8, 0);
}

/**
 * The difference hash (dHash) of a whole picture, the API's `hash`: shrunk to 9x8, a bit per pixel
 * darker than its right-hand neighbour, laid out in the bands of migration 0003's indexes.
 */
export function pictureDifferenceHash(grey: Grey): bigint {
  return dhashOfPixels(differenceGrid(grey));
}

/** The difference hash of a square view: a bit per pixel darker than its right-hand neighbour, row by row. */
export function differenceHash(view: Uint8Array, side: number): bigint {
  const grid = differenceGrid(asGrey(view, side));
  const bits: boolean[] = [];
  for (let row = 0; row < 8; row++) {
    for (let column = 0; column < 8; column++) {
      bits.push((grid[row * 9 + column] as number) < (grid[row * 9 + column + 1] as number));
    }
  }
  return pack(bits);
}

const DCT_SIDE = 32;
const DCT_KEEP = 8;
// cos((2x + 1) u pi / 2N) for the kept frequencies u, by u then x
const COSINES = Array.from({ length: DCT_KEEP }, (_, u) =>
  Float64Array.from({ length: DCT_SIDE }, (_, x) => Math.cos(((2 * x + 1) * u * Math.PI) / (2 * DCT_SIDE))),
);

/**
 * The DCT hash (pHash) of a square view: at 32x32, the 8x8 lowest frequencies of its discrete
 * cosine transform, a bit per coefficient above their median (the constant term left out and
 * its bit always 0). Robust to blur, noise and small geometric change.
 */
export function dctHash(view: Uint8Array, side: number): bigint {
  const pixels = side === DCT_SIDE ? view : resample(asGrey(view, side), 0, 0, side, side, DCT_SIDE, DCT_SIDE, 0);
  // rows first: for each row y, the kept frequencies u
  const partial = new Float64Array(DCT_SIDE * DCT_KEEP);
  for (let y = 0; y < DCT_SIDE; y++) {
    for (let u = 0; u < DCT_KEEP; u++) {
      const cos = COSINES[u] as Float64Array;
      let sum = 0;
      for (let x = 0; x < DCT_SIDE; x++) sum += (pixels[y * DCT_SIDE + x] as number) * (cos[x] as number);
      partial[y * DCT_KEEP + u] = sum;
    }
  }
  const coefficients: number[] = [];
  for (let v = 0; v < DCT_KEEP; v++) {
    const cos = COSINES[v] as Float64Array;
    for (let u = 0; u < DCT_KEEP; u++) {
      let sum = 0;
      for (let y = 0; y < DCT_SIDE; y++) sum += (partial[y * DCT_KEEP + u] as number) * (cos[y] as number);
      coefficients.push(sum);
    }
  }
  const ac = coefficients.slice(1);
  const median = [...ac].sort((a, b) => a - b)[ac.length >> 1] as number;
  return pack([false, ...ac.map((c) => c > median)]);
}
