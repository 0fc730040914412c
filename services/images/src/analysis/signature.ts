import { canonicalViews, type Grey } from './canonical.ts';
import { decodeGrey } from './decode.ts';
import { hammingDistance } from './dhash.ts';
import { dctHash, differenceHash, pictureDifferenceHash } from './hashes.ts';

/** The side of the square views a signature keeps for verification. */
export const SIDE = 32;

/**
 * What the images-worker keeps of an image to find its near-duplicates: four 64-bit perceptual
 * hashes for candidates, and two small greyscale views for verifying them.
 * - `content`: the picture centred on its content's centre of mass and scaled to its spread, so a
 *   shifted, padded, cropped or resized copy gives nearly the same view;
 * - `frame`: the whole picture squeezed to a square, for pictures whose content fills the frame.
 * Hashes: difference hash and DCT hash of each view, in that order.
 */
export interface Signature {
  hashes: [bigint, bigint, bigint, bigint];
  content: Uint8Array;
  frame: Uint8Array;
}

/** The signature of a decoded greyscale picture. */
export function signatureOfGrey(grey: Grey): Signature {
  const views = canonicalViews(grey, SIDE);
  return {
    hashes: [
      differenceHash(views.content, SIDE),
      dctHash(views.content, SIDE),
      differenceHash(views.frame, SIDE),
      dctHash(views.frame, SIDE),
    ],
    content: views.content,
    frame: views.frame,
  };
}

const HASH_BYTES = 4 * 8;
/** The bytes of a packed signature: the hashes, big-endian, then the content view, then the frame view. */
export const PACKED_BYTES = HASH_BYTES + 2 * SIDE * SIDE;

/** A signature as stored (images.signature). */
export function packSignature(signature: Signature): Buffer {
  const out = Buffer.alloc(PACKED_BYTES);
  signature.hashes.forEach((hash, i) => {
    out.writeBigUInt64BE(BigInt.asUintN(64, hash), i * 8);
  });
  out.set(signature.content, HASH_BYTES);
  out.set(signature.frame, HASH_BYTES + SIDE * SIDE);
  return out;
}

/** A stored signature read back; throws for bytes of another length (a signature of another layout). */
export function unpackSignature(bytes: Uint8Array): Signature {
  if (bytes.length !== PACKED_BYTES) throw new Error(`A signature is ${PACKED_BYTES} bytes, got ${bytes.length}`);
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const hash = (i: number) => buffer.readBigUInt64BE(i * 8);
  return {
    hashes: [hash(0), hash(1), hash(2), hash(3)],
    content: buffer.subarray(HASH_BYTES, HASH_BYTES + SIDE * SIDE),
    frame: buffer.subarray(HASH_BYTES + SIDE * SIDE, PACKED_BYTES),
  };
}

/**
 * The candidate keys of a signature: one per band of each hash (band b takes every fourth bit from
 * bit 63 - b down), tagged with the hash and band, so two images share a key when one band of one
 * hash is the same in both. Each key is under 2^20.
 */
export function signatureKeys(signature: Signature): bigint[] {
  return signature.hashes.flatMap((hash, h) => {
    // the hash as two 32-bit halves: bit 63 - n is bit 31 - n of the high half, for n < 32
    const high = Number(BigInt.asUintN(64, hash) >> 32n);
    const low = Number(BigInt.asUintN(32, hash));
    const bitAt = (n: number) => (n < 32 ? (high >>> (31 - n)) & 1 : (low >>> (63 - n)) & 1);
    return [0, 1, 2, 3].map((band) => {
      let value = 0;
      for (let i = 0; i < 16; i++) value = (value << 1) | bitAt(i * 4 + band);
      return BigInt(((h * 4 + band) << 16) | value);
    });
  });
}

/** What the images-worker keeps of an image: its difference hash (the API's `hash`) and its signature. */
export interface Analysis {
  hash: bigint;
  signature: Signature;
}

/** The difference hash and signature of an image file's bytes; throws for data that cannot be decoded. */
export async function analyseBytes(bytes: Buffer, maxPixels: number): Promise<Analysis> {
  const grey = await decodeGrey(bytes, maxPixels);
  return { hash: pictureDifferenceHash(grey), signature: signatureOfGrey(grey) };
}

/** The signature of an image file's bytes; throws for data that cannot be decoded. */
export async function signatureOf(bytes: Buffer, maxPixels: number): Promise<Signature> {
  return signatureOfGrey(await decodeGrey(bytes, maxPixels));
}

/** The fewest bits in which any of two signatures' four hashes differ. */
export function hashDistance(a: Signature, b: Signature): number {
  return Math.min(...a.hashes.map((hash, i) => hammingDistance(hash, b.hashes[i] as bigint)));
}
