import { SIDE, type Signature } from './signature.ts';

/** How far, in view pixels each way, two views may be shifted against each other to line up. */
const SHIFT = 2;
/** The box radius of the local mean taken away before comparing: what is left is edges and strokes. */
const DETAIL_RADIUS = 3;
/** Pixels at the edge of a view left out of a transformed comparison: padding and cropping change them. */
const MARGIN = 2;
/**
 * The score from which two images count as near-duplicates unless a request says otherwise: on real
 * digits, every family of copies scores above it for at least 8 in 10 copies, and two different
 * drawings of the same digit almost never do (docs/decisions/0111).
 */
export const DEFAULT_THRESHOLD = 0.97;
/** The lowest score a pair is kept at, and so the lowest threshold a request may set. */
export const PAIR_FLOOR = 0.9;
/** Under this score by shifting alone, rotating and scaling cannot bring a pair to the default threshold. */
const SEARCH_FROM = 0.83;

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
 * The Pearson correlation of picture a with picture b shifted by (dx, dy), on the pixels they
 * share less `margin` on every side; -1 when nothing varies.
 */
function correlationAt(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  side: number,
  dx: number,
  dy: number,
  margin: number,
): number {
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
  if (!(varA > 0 && varB > 0)) return -1;
  return (sab - (sa * sb) / n) / Math.sqrt(varA * varB);
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
      const r = correlationAt(a, b, side, dx, dy, margin);
      if (r > best) best = r;
    }
  }
  return best;
}

/**
 * bestCorrelation over shifts of up to SHIFT, found coarse to fine: the best shift of up to one
 * pixel at half size, then the full-size shifts around its double. A third of the work.
 */
function shiftedCorrelation(a: Uint8Array, b: Uint8Array, margin: number): number {
  const small = SIDE / 2;
  const ha = halfDetailOf(a);
  const hb = halfDetailOf(b);
  let coarse = { r: -2, dx: 0, dy: 0 };
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const r = correlationAt(ha, hb, small, dx, dy, margin / 2);
      if (r > coarse.r) coarse = { r, dx, dy };
    }
  }
  const da = detailOf(a);
  const db = detailOf(b);
  let best = -1;
  for (let dy = Math.max(-SHIFT, 2 * coarse.dy - 1); dy <= Math.min(SHIFT, 2 * coarse.dy + 1); dy++) {
    for (let dx = Math.max(-SHIFT, 2 * coarse.dx - 1); dx <= Math.min(SHIFT, 2 * coarse.dx + 1); dx++) {
      const r = correlationAt(da, db, SIDE, dx, dy, margin);
      if (r > best) best = r;
    }
  }
  return best;
}

/** A 2x3 affine map about a view's centre: x' = a x + b y + tx, y' = c x + d y + ty. */
interface Affine {
  a: number;
  b: number;
  c: number;
  d: number;
  tx: number;
  ty: number;
}

const IDENTITY: Affine = { a: 1, b: 0, c: 0, d: 1, tx: 0, ty: 0 };

/** The copies a near-duplicate survives: about 7 degrees of rotation, 15 % of scale, 3 px of shift (at 32 px). */
const LIMITS = { scale: 0.15, turn: 0.12, shift: 3 };

function clampAffine(m: Affine, side: number): Affine {
  const clamp = (v: number, low: number, high: number) => Math.min(high, Math.max(low, v));
  const shift = (LIMITS.shift * side) / SIDE;
  return {
    a: clamp(m.a, 1 - LIMITS.scale, 1 + LIMITS.scale),
    d: clamp(m.d, 1 - LIMITS.scale, 1 + LIMITS.scale),
    b: clamp(m.b, -LIMITS.turn, LIMITS.turn),
    c: clamp(m.c, -LIMITS.turn, LIMITS.turn),
    tx: clamp(m.tx, -shift, shift),
    ty: clamp(m.ty, -shift, shift),
  };
}

/**
 * Where each pixel of a side x side picture samples through the map (bilinear, edges repeated
 * outside): pixel i reads the 2x2 block at `at[i]` (its top-left index) with the weights
 * `weights[4i..4i+3]` (top-left, top-right, bottom-left, bottom-right). Filled into the arrays
 * given, so the alignment's steps allocate nothing.
 */
function mapTaps(m: Affine, side: number, at: Int32Array, weights: Float64Array): void {
  const centre = (side - 1) / 2;
  for (let y = 0; y < side; y++) {
    const v = y - centre;
    for (let x = 0; x < side; x++) {
      const u = x - centre;
      const px = Math.min(side - 1, Math.max(0, m.a * u + m.b * v + m.tx + centre));
      const py = Math.min(side - 1, Math.max(0, m.c * u + m.d * v + m.ty + centre));
      const x0 = Math.min(side - 2, Math.floor(px));
      const y0 = Math.min(side - 2, Math.floor(py));
      const fx = px - x0;
      const fy = py - y0;
      const i = y * side + x;
      at[i] = y0 * side + x0;
      weights[4 * i] = (1 - fx) * (1 - fy);
      weights[4 * i + 1] = fx * (1 - fy);
      weights[4 * i + 2] = (1 - fx) * fy;
      weights[4 * i + 3] = fx * fy;
    }
  }
}

/** Pixel i of a picture sampled through taps made by mapTaps. */
function sampleAt(picture: ArrayLike<number>, side: number, at: Int32Array, weights: Float64Array, i: number): number {
  const a = at[i] as number;
  return (
    (picture[a] as number) * (weights[4 * i] as number) +
    (picture[a + 1] as number) * (weights[4 * i + 1] as number) +
    (picture[a + side] as number) * (weights[4 * i + 2] as number) +
    (picture[a + side + 1] as number) * (weights[4 * i + 3] as number)
  );
}

/** The picture sampled through the map: out(x, y) = picture(m(x, y)). */
function warp(picture: ArrayLike<number>, side: number, m: Affine): Float32Array {
  const n = side * side;
  const at = new Int32Array(n);
  const weights = new Float64Array(4 * n);
  mapTaps(m, side, at, weights);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sampleAt(picture, side, at, weights, i);
  return out;
}

/** A picture at half size, each pixel the mean of four. */
function half(picture: ArrayLike<number>, side: number): Float32Array {
  const small = side / 2;
  const out = new Float32Array(small * small);
  for (let y = 0; y < small; y++) {
    for (let x = 0; x < small; x++) {
      const at = 2 * y * side + 2 * x;
      out[y * small + x] =
        ((picture[at] as number) +
          (picture[at + 1] as number) +
          (picture[at + side] as number) +
          (picture[at + side + 1] as number)) /
        4;
    }
  }
  return out;
}

/** Central-difference gradients of a picture (one-sided at the edges). */
function gradients(picture: Float32Array, side: number): { gx: Float32Array; gy: Float32Array } {
  const gx = new Float32Array(side * side);
  const gy = new Float32Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const at = y * side + x;
      const left = picture[x > 0 ? at - 1 : at] as number;
      const right = picture[x < side - 1 ? at + 1 : at] as number;
      const up = picture[y > 0 ? at - side : at] as number;
      const down = picture[y < side - 1 ? at + side : at] as number;
      gx[at] = (right - left) / (x > 0 && x < side - 1 ? 2 : 1);
      gy[at] = (down - up) / (y > 0 && y < side - 1 ? 2 : 1);
    }
  }
  return { gx, gy };
}

/** Solves the 6x6 system h x = g (h symmetric positive definite) by Gaussian elimination; undefined if singular. */
function solve6(h: Float64Array, g: Float64Array): Float64Array | undefined {
  const m = Float64Array.from(h);
  const x = Float64Array.from(g);
  for (let col = 0; col < 6; col++) {
    let pivot = col;
    for (let row = col + 1; row < 6; row++)
      if (Math.abs(m[row * 6 + col] as number) > Math.abs(m[pivot * 6 + col] as number)) pivot = row;
    if (Math.abs(m[pivot * 6 + col] as number) < 1e-12) return undefined;
    if (pivot !== col) {
      for (let k = 0; k < 6; k++) {
        const t = m[col * 6 + k] as number;
        m[col * 6 + k] = m[pivot * 6 + k] as number;
        m[pivot * 6 + k] = t;
      }
      const t = x[col] as number;
      x[col] = x[pivot] as number;
      x[pivot] = t;
    }
    for (let row = col + 1; row < 6; row++) {
      const f = (m[row * 6 + col] as number) / (m[col * 6 + col] as number);
      for (let k = col; k < 6; k++) m[row * 6 + k] = (m[row * 6 + k] as number) - f * (m[col * 6 + k] as number);
      x[row] = (x[row] as number) - f * (x[col] as number);
    }
  }
  for (let row = 5; row >= 0; row--) {
    let sum = x[row] as number;
    for (let k = row + 1; k < 6; k++) sum -= (m[row * 6 + k] as number) * (x[k] as number);
    x[row] = sum / (m[row * 6 + row] as number);
  }
  return x;
}

/** Iterations of the alignment at most, at half size and then at full size; it usually settles in a few. */
const ALIGN_ITERATIONS = 10;
const REFINE_ITERATIONS = 3;

/**
 * The affine map that best lines picture b up with template t (both side x side), by enhanced
 * correlation coefficient maximisation (Evangelidis and Psarakis, 2008): Gauss-Newton steps on
 * the correlation itself, so brightness and contrast do not count. Starts at `start`, stays
 * within LIMITS; returns the map with the best correlation seen.
 */
function align(t: Float32Array, b: Float32Array, side: number, start: Affine, iterations: number): Affine {
  const { gx, gy } = gradients(b, side);
  const centre = (side - 1) / 2;
  const n = side * side;
  let meanT = 0;
  for (let i = 0; i < n; i++) meanT += t[i] as number;
  meanT /= n;
  let tt = 0;
  for (let i = 0; i < n; i++) tt += ((t[i] as number) - meanT) ** 2;
  let m = start;
  let best = { rho: -2, m: start };
  const h = new Float64Array(36);
  const rt = new Float64Array(6);
  const ri = new Float64Array(6);
  const rs = new Float64Array(6);
  const row = new Float64Array(6);
  const at = new Int32Array(n);
  const weights = new Float64Array(4 * n);
  for (let iteration = 0; iteration < iterations; iteration++) {
    // the taps of the map, then one pass: the picture and its gradients sampled through them, and
    // every sum the step needs
    h.fill(0);
    rt.fill(0);
    ri.fill(0);
    rs.fill(0);
    let si = 0;
    let sii = 0;
    let sti = 0;
    mapTaps(m, side, at, weights);
    for (let y = 0; y < side; y++) {
      const v = y - centre;
      for (let x = 0; x < side; x++) {
        const u = x - centre;
        const i = y * side + x;
        const iv = sampleAt(b, side, at, weights, i);
        const dx = sampleAt(gx, side, at, weights, i);
        const dy = sampleAt(gy, side, at, weights, i);
        const tv = (t[i] as number) - meanT;
        si += iv;
        sii += iv * iv;
        sti += tv * iv;
        // d(picture(m(x, y))) / d(a, c, b, d, tx, ty)
        row[0] = dx * u;
        row[1] = dy * u;
        row[2] = dx * v;
        row[3] = dy * v;
        row[4] = dx;
        row[5] = dy;
        for (let k = 0; k < 6; k++) {
          const rk = row[k] as number;
          rs[k] = (rs[k] as number) + rk;
          rt[k] = (rt[k] as number) + rk * tv;
          ri[k] = (ri[k] as number) + rk * iv;
          for (let l = k; l < 6; l++) h[k * 6 + l] = (h[k * 6 + l] as number) + rk * (row[l] as number);
        }
      }
    }
    for (let k = 0; k < 6; k++) for (let l = 0; l < k; l++) h[k * 6 + l] = h[l * 6 + k] as number;
    // the warped picture made zero-mean in the sums: its mean times each Jacobian column taken away
    const meanI = si / n;
    const ii = sii - n * meanI * meanI;
    const ti = sti;
    const jt = rt;
    const ji = new Float64Array(6);
    for (let k = 0; k < 6; k++) ji[k] = (ri[k] as number) - meanI * (rs[k] as number);
    const rho = tt > 0 && ii > 0 ? ti / Math.sqrt(tt * ii) : -1;
    if (rho > best.rho) best = { rho, m };
    const hi = solve6(h, ji);
    if (!hi) break;
    let jiHi = 0;
    let jtHi = 0;
    for (let k = 0; k < 6; k++) {
      jiHi += (ji[k] as number) * (hi[k] as number);
      jtHi += (jt[k] as number) * (hi[k] as number);
    }
    const denominator = ti - jtHi;
    if (denominator <= 0) break;
    const lambda = (ii - jiHi) / denominator;
    // the step: towards lambda * template from the warped picture, in the map's coordinates
    const step = new Float64Array(6);
    for (let k = 0; k < 6; k++) step[k] = lambda * (jt[k] as number) - (ji[k] as number);
    const dp = solve6(h, step);
    if (!dp) break;
    m = clampAffine(
      {
        a: m.a + (dp[0] as number),
        c: m.c + (dp[1] as number),
        b: m.b + (dp[2] as number),
        d: m.d + (dp[3] as number),
        tx: m.tx + (dp[4] as number),
        ty: m.ty + (dp[5] as number),
      },
      side,
    );
    const settled = Math.hypot(dp[0] as number, dp[1] as number, dp[2] as number, dp[3] as number) < 1e-3;
    if (settled && Math.hypot(dp[4] as number, dp[5] as number) < 0.01) break;
  }
  return best.m;
}

/**
 * The best detail correlation of view b, rotated, scaled and shifted a little (within LIMITS),
 * with view a, at the map that best lines the two views up.
 */
function searchTransforms(a: Uint8Array, b: Uint8Array, side: number): number {
  // aligned on the pictures themselves, smoother than their detail: at half size, then at full
  const coarse = align(half(a, side), half(b, side), side / 2, IDENTITY, ALIGN_ITERATIONS);
  const start = { ...coarse, tx: coarse.tx * 2, ty: coarse.ty * 2 };
  const found = align(Float32Array.from(a), Float32Array.from(b), side, start, REFINE_ITERATIONS);
  return bestCorrelation(detailOf(a), detail(warp(b, side, found), side), side, 1, MARGIN);
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
  const shifted = shiftedScore(a, b);
  return searchWorthy(shifted, threshold) ? aligned(a, b, shifted) : Math.max(0, shifted.score);
}

/** The better of two images' views' detail correlations over small shifts, and which view it was. */
interface Shifted {
  score: number;
  view: 'content' | 'frame';
}

function shiftedScore(a: Signature, b: Signature): Shifted {
  const content = shiftedCorrelation(a.content, b.content, 0);
  const frame = shiftedCorrelation(a.frame, b.frame, MARGIN);
  return content >= frame ? { score: content, view: 'content' } : { score: frame, view: 'frame' };
}

/** Whether aligning could bring a pair from its shifted score to the threshold. */
function searchWorthy(shifted: Shifted, threshold: number): boolean {
  return shifted.score < threshold && shifted.score >= SEARCH_FROM;
}

/** The score with the view that lines up better by shifting also aligned by an affine map. */
function aligned(a: Signature, b: Signature, shifted: Shifted): number {
  const searched = searchTransforms(a[shifted.view], b[shifted.view], SIDE);
  return Math.max(0, shifted.score, searched);
}

/**
 * The scores of an image against its finalists, as the images-worker keeps them: each by shifting
 * alone, and only the one that shifts best, when close, aligned as well. An image has seldom more
 * than one copy among its finalists, and aligning a look-alike costs ten times the shifts.
 */
export function finalistScores(probe: Signature, finalists: Signature[], threshold = DEFAULT_THRESHOLD): number[] {
  const shifted = finalists.map((finalist) => shiftedScore(probe, finalist));
  const scores = shifted.map((s) => Math.max(0, s.score));
  let best = -1;
  shifted.forEach((s, i) => {
    if (searchWorthy(s, threshold) && (best < 0 || s.score > (shifted[best] as Shifted).score)) best = i;
  });
  if (best >= 0) scores[best] = aligned(probe, finalists[best] as Signature, shifted[best] as Shifted);
  return scores;
}

const details = new WeakMap<Uint8Array, Float32Array>();
const halfDetails = new WeakMap<Uint8Array, Float32Array>();

/** A view's detail at half size, kept like detailOf's. */
function halfDetailOf(view: Uint8Array): Float32Array {
  let found = halfDetails.get(view);
  if (!found) {
    found = half(detailOf(view), SIDE);
    halfDetails.set(view, found);
  }
  return found;
}

/** A view's detail, kept with the view for as long as it lives: an image is compared with several others. */
export function detailOf(view: Uint8Array): Float32Array {
  let found = details.get(view);
  if (!found) {
    found = detail(view);
    details.set(view, found);
  }
  return found;
}
