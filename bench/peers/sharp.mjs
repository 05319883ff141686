// The sharp peer of bench/thumbnail.sh: the thumbnail job over every JPEG and PNG in a folder.
//
//   SHARP_DIR=~/.cache/pixelflow/bench/sharp node bench/peers/sharp.mjs --jobs 2 IN_DIR OUT_DIR
//   SHARP_DIR=... node bench/peers/sharp.mjs --versions
//
// The job, as sharp's users write it: EXIF orientation applied (`rotate()` with no angle), fit
// within 800x800 with Lanczos3, never enlarged, transparency flattened onto white, baseline
// JPEG at quality 80 (sharp's defaults otherwise: 4:2:0, optimised Huffman, no metadata),
// written as {stem}.jpg. `--jobs N` keeps N images in flight and gives libvips N threads
// (`sharp.concurrency(N)`). sharp is loaded from SHARP_DIR (an `npm ci` of bench/package.json
// outside the clone), so nothing is installed in the repository.
import { createRequire } from 'node:module';
import { readdir } from 'node:fs/promises';
import path from 'node:path';

const dir = process.env.SHARP_DIR;
if (!dir) {
  console.error('sharp.mjs: set SHARP_DIR to the folder where bench/package.json was installed (npm ci)');
  process.exit(2);
}
const sharp = createRequire(path.join(path.resolve(dir), 'package.json'))('sharp');

const args = process.argv.slice(2);
if (args[0] === '--versions') {
  console.log(JSON.stringify({ sharp: sharp.versions.sharp, vips: sharp.versions.vips }));
  process.exit(0);
}
let jobs = 2;
if (args[0] === '--jobs') {
  jobs = Number(args[1]);
  args.splice(0, 2);
}
if (args.length !== 2 || !(jobs >= 1)) {
  console.error('usage: sharp.mjs [--jobs N] IN_DIR OUT_DIR | --versions');
  process.exit(2);
}
const [inDir, outDir] = args;

sharp.concurrency(jobs);
const files = (await readdir(inDir)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
let next = 0;
let failed = 0;

async function worker() {
  while (next < files.length) {
    const file = files[next++];
    const stem = file.replace(/\.[^.]*$/, '');
    try {
      await sharp(path.join(inDir, file))
        .rotate()
        .resize(800, 800, { fit: 'inside', withoutEnlargement: true, kernel: 'lanczos3' })
        .flatten({ background: '#ffffff' })
        .jpeg({ quality: 80 })
        .toFile(path.join(outDir, `${stem}.jpg`));
    } catch (e) {
      console.error(`sharp.mjs: ${file}: ${e.message}`);
      failed++;
    }
  }
}

await Promise.all(Array.from({ length: jobs }, worker));
if (failed) {
  console.error(`sharp.mjs: ${failed} of ${files.length} images failed`);
  process.exit(1);
}
