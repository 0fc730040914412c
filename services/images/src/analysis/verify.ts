import { SIDE, type Signature } from './signature.ts';

/** How far, in view pixels each way, two views may be shifted against each other to line up. */
const SHIFT = 2;
/** The box radius of the local mean taken away before comparing: what is left is edges and strokes. */
const DETAIL_RADIUS = 3;
/** Rotations (radians) and axis scales tried when the views do not line up by shifting alone. */
const ANGLE_STEP = (2 * Math.PI) / 180;
const ANGLES = [-2, -1, 0, 1, 2].map((step) => step * ANGLE_STEP);
const SCALE_STEP = 0.05;
const SCALES = [-2, 0, 2].map((step) => 1 + step * SCALE_STEP);
/** Pixels at the edge of a view left out of a transformed comparison: padding and cropping change them. */
const MARGIN = 2;
/**
 * The score from which two images count as near-duplicates unless a request says otherwise: on real
 * digits, every family of copies scores above it for at least 8 in 10 copies, and two different
 * drawings of the same digit almost never do (docs/decisions/0111).
 */
export const DEFAULT_THRESHOLD = 0.965;
/** Under this score by shifting alone, rotating and scaling cannot bring a pair to the default threshold. */
const SEARCH_FROM = 0.75;

/**
 * The view less its local mean (a box of DETAIL_RADIUS): a band-pass that keeps strokes and edges
 * and drops what gradients and lighting add, so two different pictures with the same background
 * or of the same rough shape do not correlate through it.
 */
export function detail(view: ArrayLike<number>, side: number = SIDE): Float32Array {
  // summed-area table, one row and column of zeros in front
  const stride = side + 1;
  const sums = new Float64Array(stride * stride);
  for (let y = 0; y < side; y++) {
    let row = 0;
    for (let x = 0; x < side; x++) {
      row += view[y * side + x] as number;
      sums[(y + 1) * stride + x + 1] = (sums[y * stride + x + 1] as number) + row;
    }
  }
  const out = new Float32Array(side * side);
  for (let y = 0; y < side; y++) {
    const y0 = Math.max(0, y - DETAIL_RADIUS);
    const y1 = Math.min(side, y + DETAIL_RADIUS + 1);
    for (let x = 0; x < side; x++) {
      const x0 = Math.max(0, x - DETAIL_RADIUS);
      const x1 = Math.min(side, x + DETAIL_RADIUS + 1);
      const total =
        (sums[y1 * stride + x1] as number) -
        (sums[y0 * stride + x1] as number) -
        (sums[y1 * stride + x0] as number) +
        (sums[y0 * stride + x0] as number);
      out[y * side + x] = (view[y * side + x] as number) - total / ((y1 - y0) * (x1 - x0));
    }
  }
  return out;
}

/**
 * The best Pearson correlation of two square pictures over shifts of up to `shift` pixels each
 * way, on the pixels they share at that shift less `margin` on every side; -1 when nothing varies.
 */
export function bestCorrelation(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  side: number,
  shift: number,
  margin = 0,
): number {
  let best = -1;
  for (let dy = -shift; dy <= shift; dy++) {
    for (let dx = -shift; dx <= shift; dx++) {
      let sa = 0;
      let sb = 0;
      let saa = 0;
      let sbb = 0;
      let sab = 0;
      const y0 = Math.max(0, dy) + margin;
      const y1 = Math.min(side, side + dy) - margin;
      const x0 = Math.max(0, dx) + margin;
      const x1 = Math.min(side, side + dx) - margin;
      for (let y = y0; y < y1; y++) {
        const rowA = y * side;
        const rowB = (y - dy) * side - dx;
        for (let x = x0; x < x1; x++) {
          const va = a[rowA + x] as number;
          const vb = b[rowB + x] as number;
          sa += va;
          sb += vb;
          saa += va * va;
          sbb += vb * vb;
          sab += va * vb;
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      const varA = saa - (sa * sa) / n;
      const varB = sbb - (sb * sb) / n;
      if (varA <= 0 || varB <= 0) continue;
      const r = (sab - (sa * sb) / n) / Math.sqrt(varA * varB);
      if (r > best) best = r;
    }
  }
  return best;
}

/** The view rotated by `angle` and scaled by sx and sy about its centre (bilinear, edges repeated outside). */
function warp(view: Uint8Array, side: number, angle: number, sx: number, sy: number): Float32Array {
  const out = new Float32Array(side * side);
  const centre = (side - 1) / 2;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  // outside the view, its nearest edge pixel: a hard edge there would count as detail
  const clamp = (i: number) => (i < 0 ? 0 : i >= side ? side - 1 : i);
  const at = (x: number, y: number) => view[clamp(y) * side + clamp(x)] as number;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const u = (cos * (x - centre) - sin * (y - centre)) / sx + centre;
      const v = (sin * (x - centre) + cos * (y - centre)) / sy + centre;
      const x0 = Math.floor(u);
      const y0 = Math.floor(v);
      const fx = u - x0;
      const fy = v - y0;
      out[y * side + x] =
        (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) +
        (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
    }
  }
  return out;
}

/** The detail correlation of view a with view b rotated by `angle` and scaled by sx and sy, shifted up to a pixel. */
function transformed(target: Float32Array, b: Uint8Array, side: number, angle: number, sx: number, sy: number): number {
  return bestCorrelation(target, detail(warp(b, side, angle, sx, sy), side), side, 1, MARGIN);
}

/**
 * The best detail correlation of view b, rotated up to 5 degrees and each axis scaled by up to
 * 12.5 %, with view a: the best of a coarse grid, then of the half steps around it.
 */
function searchTransforms(a: Uint8Array, b: Uint8Array, side: number): number {
  const target = detail(a, side);
  let best = { r: -1, angle: 0, sx: 1, sy: 1 };
  for (const angle of ANGLES) {
    for (const sx of SCALES) {
      for (const sy of SCALES) {
        if (angle === 0 && sx === 1 && sy === 1) continue;
        const r = transformed(target, b, side, angle, sx, sy);
        if (r > best.r) best = { r, angle, sx, sy };
      }
    }
  }
  const coarse = best;
  for (const da of [-ANGLE_STEP / 2, 0, ANGLE_STEP / 2]) {
    for (const dsx of [-SCALE_STEP / 2, 0, SCALE_STEP / 2]) {
      for (const dsy of [-SCALE_STEP / 2, 0, SCALE_STEP / 2]) {
        if (da === 0 && dsx === 0 && dsy === 0) continue;
        const r = transformed(target, b, side, coarse.angle + da, coarse.sx + dsx, coarse.sy + dsy);
        if (r > best.r) best = { ...best, r };
      }
    }
  }
  return best.r;
}

/**
 * How alike two images are, from 0 to 1: the best correlation of the detail (see `detail`) of
 * their content views or of their frame views, over small shifts, and, when that comes close
 * (under `threshold` but at least SEARCH_FROM), over small rotations and axis scales too: a
 * rotated, padded or cropped copy lines up again, while two different drawings of the same digit
 * do not. Pairs at `threshold` or above by shifting alone skip the search, so a score under 1 is
 * exact only below the threshold; at or above it, it says the pair is in.
 */
export function verificationScore(a: Signature, b: Signature, threshold = DEFAULT_THRESHOLD): number {
  const shifted = Math.max(
    bestCorrelation(detail(a.content), detail(b.content), SIDE, SHIFT),
    bestCorrelation(detail(a.frame), detail(b.frame), SIDE, SHIFT, MARGIN),
  );
  if (shifted >= threshold || shifted < SEARCH_FROM) return Math.max(0, shifted);
  return Math.max(0, shifted, searchTransforms(a.content, b.content, SIDE), searchTransforms(a.frame, b.frame, SIDE));
}
