import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { colourDigit, digitRaw, FAMILIES, loadDigits, png, type Raw, seeded, twin } from '../../../bench/lib/twins.ts';
import { type Signature, signatureOf } from '../src/analysis/signature.ts';
import { DEFAULT_THRESHOLD, verificationScore } from '../src/analysis/verify.ts';

const MAX_PIXELS = 4_000_000;
const sign = (bytes: Buffer) => signatureOf(bytes, MAX_PIXELS);

/** Digits 500 on of each class: the bench uses the first ones, so the test checks other pictures. */
function pictures(perClass: number, colour: boolean, random: () => number): Array<{ label: number; raw: Raw }> {
  const digits = loadDigits();
  return digits.flatMap((ofClass, label) =>
    ofClass.slice(500, 500 + perClass).map((digit) => ({
      label,
      raw: colour ? colourDigit(digit, random) : digitRaw(digit),
    })),
  );
}

for (const family of FAMILIES) {
  test(`a ${family} copy of a real digit is paired with its original, in grey and in colour`, async () => {
    const random = seeded(FAMILIES.indexOf(family) + 1);
    const share: Record<string, number> = {};
    const misses: string[] = [];
    for (const colour of [false, true]) {
      let paired = 0;
      const originals = pictures(2, colour, random);
      for (const { raw } of originals) {
        const original = await sign(await png(raw));
        const { bytes, edit } = await twin(raw, family, random);
        const score = verificationScore(original, await sign(bytes));
        if (score >= DEFAULT_THRESHOLD) paired++;
        else misses.push(`${edit}${colour ? ' (colour)' : ''}: ${score.toFixed(3)}`);
      }
      share[colour ? 'colour' : 'grey'] = paired / originals.length;
    }
    // misses are listed to show which edits fall short. Grey digits: the family's target, 8 in 10.
    // Colour pictures on patterned gradients fall short in one family: a 1-3 px crop rescaled
    // pairs 4 to 6 copies in 10 (docs/decisions/0111); 3 in 10 is the floor kept here
    const missed = `missed ${misses.join(', ')}`;
    assert.ok((share.grey as number) >= 0.8, `${share.grey} of grey ${family} copies paired; ${missed}`);
    assert.ok((share.colour as number) >= 0.3, `${share.colour} of colour ${family} copies paired; ${missed}`);
  });
}

test('different drawings of the same digit are not paired, though they look alike', async () => {
  const random = seeded(99);
  const signatures: Array<{ label: number; signature: Signature }> = [];
  for (const { label, raw } of pictures(12, false, random)) {
    signatures.push({ label, signature: await sign(await png(raw)) });
  }
  let pairs = 0;
  const paired: string[] = [];
  for (let i = 0; i < signatures.length; i++) {
    for (let j = i + 1; j < signatures.length; j++) {
      const a = signatures[i] as (typeof signatures)[number];
      const b = signatures[j] as (typeof signatures)[number];
      if (a.label !== b.label) continue;
      pairs++;
      const score = verificationScore(a.signature, b.signature);
      if (score >= DEFAULT_THRESHOLD) paired.push(`${a.label}: ${score.toFixed(3)}`);
    }
  }
  assert.equal(pairs, 660);
  // at most 1 in 300 of the most alike pairs there are: two drawings of the same class
  assert.ok(paired.length <= 2, `${paired.length} of ${pairs} same-class pairs paired: ${paired.join(', ')}`);
});

test('a 28x28 PNG and its 56x56 JPEG copy compare, and so do a colour picture and its grey copy', async () => {
  const [digit] = loadDigits()[3]?.slice(600, 601) ?? [];
  assert.ok(digit);
  const raw = digitRaw(digit);
  const small = await png(raw);
  const large = await sharp(small).resize(56, 56).jpeg({ quality: 85 }).toBuffer();
  assert.ok(verificationScore(await sign(small), await sign(large)) >= DEFAULT_THRESHOLD);

  const colour = await png(colourDigit(digit, seeded(5)));
  const grey = await sharp(colour).greyscale().png().toBuffer();
  assert.ok(verificationScore(await sign(colour), await sign(grey)) >= DEFAULT_THRESHOLD);
  // and a different digit on the same background is not its copy
  const [other] = loadDigits()[3]?.slice(601, 602) ?? [];
  assert.ok(other);
  const otherColour = await png(colourDigit(other, seeded(5)));
  assert.ok(verificationScore(await sign(colour), await sign(otherColour)) < DEFAULT_THRESHOLD);
});

test('the same image analysed twice gives the same signature', async () => {
  const [digit] = loadDigits()[8]?.slice(700, 701) ?? [];
  assert.ok(digit);
  const bytes = await png(colourDigit(digit, seeded(3)));
  const [a, b] = await Promise.all([sign(bytes), sign(Buffer.from(bytes))]);
  assert.deepEqual(a.hashes, b.hashes);
  assert.deepEqual(a.content, b.content);
  assert.deepEqual(a.frame, b.frame);
  assert.equal(verificationScore(a, b), 1);
});

test('bytes that are not an image cannot be signed', async () => {
  await assert.rejects(sign(Buffer.from('not an image at all')), /unsupported image format|Input buffer/i);
});
