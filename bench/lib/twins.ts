// Real handwritten digits (the mnist package's 10,000) and near-duplicate copies of them made the
// ways copies leak between splits in practice; for the near-duplicate tests and the analysis bench.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { seeded } from './random.ts';

export { seeded };

/** One real digit: its class and its 28x28 greyscale pixels (0-255). */
export interface Digit {
  label: number;
  index: number;
  pixels: Uint8Array;
}

/** The kinds of copy: each a family of edits that keeps the picture while changing its bytes. */
export const FAMILIES = ['jpeg', 'webp', 'resize', 'tone', 'blur', 'translate', 'pad', 'crop', 'rotate'] as const;
export type Family = (typeof FAMILIES)[number];

let cache: Digit[][] | undefined;

/** Every digit the mnist package ships, by class (about 1,000 each). */
export function loadDigits(): Digit[][] {
  if (cache) return cache;
  const require = createRequire(import.meta.url);
  const folder = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  cache = Array.from({ length: 10 }, (_, label) => {
    const { data } = JSON.parse(readFileSync(join(folder, `${label}.json`), 'utf8')) as { data: number[] };
    const digits: Digit[] = [];
    for (let index = 0; index * 784 < data.length; index++) {
      const pixels = new Uint8Array(784);
      for (let i = 0; i < 784; i++) pixels[i] = Math.round((data[index * 784 + i] ?? 0) * 255);
      digits.push({ label, index, pixels });
    }
    return digits;
  });
  return cache;
}

/**
 * A strongly varied drawing of a real digit, as data augmentation makes them: rotated 8-25 degrees
 * either way, each axis scaled 0.8-1.2, shifted up to 3 px, and its strokes thickened or thinned
 * (a 3x3 maximum or minimum) half of the time. Far beyond the edits a near-duplicate survives, so
 * a data set of such variants has many look-alikes and no copies (for the scale benchmark).
 */
export function augmented(digit: Digit, random: () => number): Uint8Array {
  const angle = ((8 + random() * 17) * (random() < 0.5 ? -1 : 1) * Math.PI) / 180;
  const sx = 0.8 + random() * 0.4;
  const sy = 0.8 + random() * 0.4;
  const tx = (random() - 0.5) * 6;
  const ty = (random() - 0.5) * 6;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const source = digit.pixels;
  const at = (x: number, y: number) => (x < 0 || y < 0 || x > 27 || y > 27 ? 0 : (source[y * 28 + x] as number));
  const out = new Uint8Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      // the output pixel's place in the source: undo the shift, the scale and the rotation about the centre
      const u = x - 13.5 - tx;
      const v = y - 13.5 - ty;
      const px = (cos * u + sin * v) / sx + 13.5;
      const py = (-sin * u + cos * v) / sy + 13.5;
      const x0 = Math.floor(px);
      const y0 = Math.floor(py);
      const fx = px - x0;
      const fy = py - y0;
      const value =
        (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) +
        (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
      out[y * 28 + x] = Math.round(value);
    }
  }
  const stroke = random();
  if (stroke >= 0.5) return out;
  const pick = stroke < 0.25 ? Math.max : Math.min;
  const changed = new Uint8Array(784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      let value = out[y * 28 + x] as number;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && xx >= 0 && yy < 28 && xx < 28) value = pick(value, out[yy * 28 + xx] as number);
        }
      }
      changed[y * 28 + x] = value;
    }
  }
  return changed;
}

/** A raw picture: width x height x channels bytes. */
export interface Raw {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** A digit as a raw greyscale picture. */
export function digitRaw(digit: Digit): Raw {
  return { data: digit.pixels, width: 28, height: 28, channels: 1 };
}

/**
 * A colour picture made of a real digit: the digit in a random colour, twice its size, on a
 * 64x64 background that is a random two-colour gradient under a soft random wave pattern (periods
 * of 12 px and more, as in photographed backgrounds; no pixel-level grain).
 */
export function colourDigit(digit: Digit, random: () => number): Raw {
  const side = 64;
  const data = new Uint8Array(side * side * 3);
  const colour = () => [0, 1, 2].map(() => Math.floor(random() * 256));
  const from = colour();
  const to = colour();
  const ink = colour();
  const angle = random() * Math.PI * 2;
  const waves = [0, 1].map(() => ({
    fx: (random() - 0.5) / 6,
    fy: (random() - 0.5) / 6,
    phase: random() * Math.PI * 2,
    amplitude: 10 + random() * 25,
  }));
  const ox = 2 + Math.floor(random() * 6);
  const oy = 2 + Math.floor(random() * 6);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const t = 0.5 + (((x - 32) * Math.cos(angle) + (y - 32) * Math.sin(angle)) / 64) * 0.9;
      let texture = 0;
      for (const w of waves) texture += w.amplitude * Math.sin(2 * Math.PI * (w.fx * x + w.fy * y) + w.phase);
      // the digit, enlarged twice by nearest neighbour, as coverage
      const dx = Math.floor((x - ox) / 2);
      const dy = Math.floor((y - oy) / 2);
      const cover = dx >= 0 && dy >= 0 && dx < 28 && dy < 28 ? (digit.pixels[dy * 28 + dx] as number) / 255 : 0;
      for (let c = 0; c < 3; c++) {
        const back = (from[c] as number) * (1 - t) + (to[c] as number) * t + texture;
        data[(y * side + x) * 3 + c] = Math.max(
          0,
          Math.min(255, Math.round(back * (1 - cover) + (ink[c] as number) * cover)),
        );
      }
    }
  }
  return { data, width: side, height: side, channels: 3 };
}

const rawOptions = (raw: Raw) => ({ raw: { width: raw.width, height: raw.height, channels: raw.channels } });

/** A raw picture as PNG bytes. */
export function png(raw: Raw): Promise<Buffer> {
  return sharp(raw.data, rawOptions(raw)).png().toBuffer();
}

const between = (random: () => number, low: number, high: number) => low + random() * (high - low);
const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** Pixels to pad or crop on each side (top, right, bottom, left): 1-3 on some sides, never none at all. */
function edges(random: () => number): [number, number, number, number] {
  const sides: number[] = [0, 1, 2, 3].map(() => (random() < 0.6 ? Math.round(between(random, 1, 3)) : 0));
  if (!sides.some((s) => s > 0)) sides[0] = 2;
  return sides as [number, number, number, number];
}

/** The picture's background: the median of its corners' first channel, per channel. */
function backgroundOf(raw: Raw): { r: number; g: number; b: number } {
  const at = (x: number, y: number, c: number) => raw.data[(y * raw.width + x) * raw.channels + c] as number;
  const corner = (c: number) => {
    const values = [
      at(0, 0, c),
      at(raw.width - 1, 0, c),
      at(0, raw.height - 1, c),
      at(raw.width - 1, raw.height - 1, c),
    ];
    values.sort((a, b) => a - b);
    return Math.round(((values[1] as number) + (values[2] as number)) / 2);
  };
  const r = corner(0);
  return raw.channels === 1 ? { r, g: r, b: r } : { r, g: corner(1), b: corner(2) };
}

/**
 * A copy of the picture by one family of edits, with parameters drawn from the ranges that leak
 * between splits in practice: JPEG and WebP at quality 70-95; resized 0.8x-2x (kept so, or back
 * to the original size); brightness, contrast or gamma within 15 %; Gaussian blur with sigma up
 * to 1; shifted 1-2 px; 1-3 px of padding or cropping, then resized back; rotated up to 5 degrees.
 */
export async function twin(raw: Raw, family: Family, random: () => number): Promise<{ bytes: Buffer; edit: string }> {
  const { width, height } = raw;
  const image = () => sharp(raw.data, rawOptions(raw));
  const background = backgroundOf(raw);
  switch (family) {
    case 'jpeg': {
      const quality = Math.round(between(random, 70, 95));
      return { bytes: await image().jpeg({ quality }).toBuffer(), edit: `jpeg q${quality}` };
    }
    case 'webp': {
      const quality = Math.round(between(random, 70, 95));
      return { bytes: await image().webp({ quality }).toBuffer(), edit: `webp q${quality}` };
    }
    case 'resize': {
      const factor = between(random, 0.8, 2);
      const w = Math.max(8, Math.round(width * factor));
      const h = Math.max(8, Math.round(height * factor));
      const resized = await image().resize(w, h, { fit: 'fill' }).png().toBuffer();
      if (random() < 0.5) return { bytes: resized, edit: `resize x${factor.toFixed(2)}` };
      const back = await sharp(resized).resize(width, height, { fit: 'fill' }).png().toBuffer();
      return { bytes: back, edit: `resize x${factor.toFixed(2)} and back` };
    }
    case 'tone': {
      const kind = pick(random, ['brightness', 'contrast', 'gamma'] as const);
      const amount = between(random, 0.03, 0.15) * (random() < 0.5 ? -1 : 1);
      const data = new Uint8Array(raw.data.length);
      for (let i = 0; i < data.length; i++) {
        const v = (raw.data[i] as number) / 255;
        const changed =
          kind === 'brightness' ? v + amount : kind === 'contrast' ? 0.5 + (v - 0.5) * (1 + amount) : v ** (1 + amount);
        data[i] = Math.max(0, Math.min(255, Math.round(changed * 255)));
      }
      const bytes = await sharp(data, rawOptions(raw)).png().toBuffer();
      return { bytes, edit: `${kind} ${(amount * 100).toFixed(0)}%` };
    }
    case 'blur': {
      const sigma = between(random, 0.3, 1);
      return { bytes: await image().blur(sigma).png().toBuffer(), edit: `blur sigma ${sigma.toFixed(2)}` };
    }
    case 'translate': {
      const dx = Math.round(between(random, 1, 2)) * (random() < 0.5 ? -1 : 1);
      const dy = random() < 0.5 ? 0 : Math.round(between(random, 1, 2)) * (random() < 0.5 ? -1 : 1);
      const extended = await image()
        .toColourspace(raw.channels === 1 ? 'b-w' : 'srgb')
        .extend({
          left: Math.max(0, dx),
          right: Math.max(0, -dx),
          top: Math.max(0, dy),
          bottom: Math.max(0, -dy),
          background,
        })
        .raw()
        .toBuffer({ resolveWithObject: true });
      const bytes = await sharp(extended.data, {
        raw: { width: extended.info.width, height: extended.info.height, channels: extended.info.channels },
      })
        .extract({ left: Math.max(0, -dx), top: Math.max(0, -dy), width, height })
        .png()
        .toBuffer();
      return { bytes, edit: `shift ${dx},${dy}` };
    }
    case 'pad': {
      const sides = edges(random);
      const [top, right, bottom, left] = sides;
      const padded = await image().extend({ top, right, bottom, left, background }).png().toBuffer();
      const bytes = await sharp(padded).resize(width, height, { fit: 'fill' }).png().toBuffer();
      return { bytes, edit: `pad ${sides.join(',')}` };
    }
    case 'crop': {
      const sides = edges(random);
      const [top, right, bottom, left] = sides;
      const cropped = await image()
        .extract({ left, top, width: width - left - right, height: height - top - bottom })
        .png()
        .toBuffer();
      const bytes = await sharp(cropped).resize(width, height, { fit: 'fill' }).png().toBuffer();
      return { bytes, edit: `crop ${sides.join(',')}` };
    }
    case 'rotate': {
      const angle = between(random, 1, 5) * (random() < 0.5 ? -1 : 1);
      const rotated = await image()
        .rotate(angle, { background })
        .toColourspace(raw.channels === 1 ? 'b-w' : 'srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      const left = Math.floor((rotated.info.width - width) / 2);
      const top = Math.floor((rotated.info.height - height) / 2);
      const bytes = await sharp(rotated.data, {
        raw: { width: rotated.info.width, height: rotated.info.height, channels: rotated.info.channels },
      })
        .extract({ left, top, width, height })
        .png()
        .toBuffer();
      return { bytes, edit: `rotate ${angle.toFixed(1)} deg` };
    }
  }
}
