import sharp from 'sharp';

/**
 * A picture with some structure, unlike a solid colour: coloured discs on a coloured ground, laid
 * out by `seed` (the same seed, the same picture), as a PNG.
 */
export async function scene(seed: number, width = 320, height = 240): Promise<Buffer> {
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const colour = () => `rgb(${Math.floor(random() * 256)},${Math.floor(random() * 256)},${Math.floor(random() * 256)})`;
  const ground = colour();
  let discs = '';
  for (let i = 0; i < 12; i++) {
    const cx = random() * width;
    const cy = random() * height;
    const r = 10 + random() * 60;
    discs += `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${colour()}"/>`;
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="${ground}"/>${discs}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** The copies a data set picks up of one picture: smaller and lossy, larger, recompressed. */
export async function copiesOf(picture: Buffer): Promise<Buffer[]> {
  return [
    await sharp(picture).resize(160).jpeg({ quality: 50 }).toBuffer(),
    await sharp(picture).resize(640).webp({ quality: 40 }).toBuffer(),
    await sharp(picture).jpeg({ quality: 30 }).toBuffer(),
    await sharp(picture).resize(100).png().toBuffer(),
  ];
}
