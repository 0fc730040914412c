/** The number of 16-bit bands a hash is cut into for the multi-index search (see bandOf). */
export const BANDS = 4;

/**
 * Where comparison (row, column) of the 8x8 difference grid goes in the 64-bit hash. Band b (bits
 * 63-16b down to 48-16b) takes the cells with (row + column) % 4 = b: two per row, spread over
 * the whole picture, so no band is made only of a border that is blank in every image of a data
 * set (one such band would put most of the set in one bucket and undo the index).
 */
function bitPosition(row: number, column: number): number {
  const band = (row + column) % BANDS;
  const slot = row * 2 + (column >= 4 ? 1 : 0);
  return (BANDS - 1 - band) * 16 + (15 - slot);
}

const SHIFTS = Array.from({ length: 64 }, (_, cell) => bitPosition(Math.floor(cell / 8), cell % 8));

/**
 * The 64-bit difference hash (dHash) of 9x8 greyscale pixels, row by row: a bit is 1 where a pixel
 * is darker than its right-hand neighbour. Returned as an unsigned 64-bit BigInt, bits in band order.
 */
export function dhashOfPixels(pixels: ArrayLike<number>): bigint {
  if (pixels.length !== 72) throw new Error(`dHash needs 9x8 = 72 grey pixels, got ${pixels.length}`);
  // the two 32-bit halves first, one BigInt at the end
  let high = 0;
  let low = 0;
  for (let row = 0; row < 8; row++) {
    for (let column = 0; column < 8; column++) {
      const left = pixels[row * 9 + column] as number;
      const right = pixels[row * 9 + column + 1] as number;
      if (!(left < right)) continue;
      const position = SHIFTS[row * 8 + column] as number;
      if (position >= 32) high = (high | (1 << (position - 32))) >>> 0;
      else low = (low | (1 << position)) >>> 0;
    }
  }
  return (BigInt(high) << 32n) | BigInt(low);
}

/**
 * The dHash of an image file or buffer: decoded by sharp (at most maxPixels, EXIF orientation
 * applied, transparency flattened onto white so hidden colours under alpha do not count), shrunk
 * to 9x8 greyscale (Lanczos, from the fully decoded picture). Throws whatever sharp throws for data it cannot decode.
 */
export async function dhash(input: string | Buffer, maxPixels: number): Promise<bigint> {
  const { default: sharp } = await import('sharp');
  const { data, info } = await sharp(input, { limitInputPixels: maxPixels })
    .rotate()
    .flatten({ background: '#ffffff' })
    .greyscale()
    // shrink-on-load decodes JPEG and WebP at a crude fraction of their size first; the same
    // picture saved in another format or size then hashes several bits apart
    .resize(9, 8, { fit: 'fill', fastShrinkOnLoad: false })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels === 1) return dhashOfPixels(data);
  // a colour profile can leave more than one channel after greyscale(); the first is the grey
  const grey = new Uint8Array(72);
  for (let i = 0; i < 72; i++) grey[i] = data[i * info.channels] as number;
  return dhashOfPixels(grey);
}

/** The number of bits that differ between two hashes. */
export function hammingDistance(a: bigint, b: bigint): number {
  let x = BigInt.asUintN(64, a ^ b);
  let count = 0;
  while (x) {
    x &= x - 1n;
    count++;
  }
  return count;
}

/** A hash as PostgreSQL's bigint holds it (two's complement), in decimal text for a query parameter. */
export function toSigned(hash: bigint): string {
  return BigInt.asIntN(64, hash).toString();
}

/** A hash read back from a bigint column (node-postgres hands int8 over as decimal text). */
export function fromSigned(value: string): bigint {
  return BigInt.asUintN(64, BigInt(value));
}

/** A hash as 16 hex digits, as the API shows it. */
export function toHex(hash: bigint): string {
  return BigInt.asUintN(64, hash).toString(16).padStart(16, '0');
}

/** Band i (0 = the top 16 bits) of a hash; the SQL index expressions cut the same way. */
export function bandOf(hash: bigint, band: number): number {
  return Number((BigInt.asUintN(64, hash) >> BigInt((BANDS - 1 - band) * 16)) & 0xffffn);
}
