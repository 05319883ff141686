"""The Pillow (and pillow-simd) peer of bench/thumbnail.sh, and its image helpers.

  python pil.py thumbnail --jobs 2 IN_DIR OUT_DIR   the thumbnail job, a pool of N processes
  python pil.py decode --jobs 2 FILE...             decode each file fully (the PNG decode floor)
  python pil.py info IN_DIR                         the corpus: files, megapixels, shrink scales
  python pil.py dims DIR                            {stem: [width, height]} of the JPEGs in DIR
  python pil.py version

The job, as Pillow's users write it: `Image.thumbnail((800, 800), LANCZOS)` (never enlarges; on
a JPEG it first asks the decoder for a DCT-domain draft of at least twice the box, then
`reduce()`s by whole factors down to twice the box, then resamples with Lanczos: Pillow's
defaults, `reducing_gap=2.0`), EXIF orientation applied, transparency flattened onto white,
JPEG quality 80 (Pillow's defaults otherwise: 4:2:0 at this quality, no metadata), written as
{stem}.jpg.
"""

import json
import os
import sys
from multiprocessing import Pool

from PIL import Image, ImageOps

BOX = (800, 800)
EXTENSIONS = (".jpg", ".jpeg", ".png")


def images(folder):
    return sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(EXTENSIONS)
    )


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def thumbnail(job):
    src, out_dir = job
    try:
        with Image.open(src) as im:
            im.thumbnail(BOX, Image.Resampling.LANCZOS)
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.new("RGB", rgba.size, (255, 255, 255))
                im.paste(rgba, mask=rgba.getchannel("A"))
            elif im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            im.save(os.path.join(out_dir, stem(src) + ".jpg"), "JPEG", quality=80)
        return None
    except Exception as e:  # report every failure, then exit non-zero
        return f"{src}: {e}"


def decode(path):
    try:
        with Image.open(path) as im:
            im.load()
        return None
    except Exception as e:
        return f"{path}: {e}"


def run_pool(fn, items, jobs):
    with Pool(jobs) as pool:
        errors = [e for e in pool.imap_unordered(fn, items, chunksize=1) if e]
    for e in errors:
        print(f"pil.py: {e}", file=sys.stderr)
    if errors:
        print(f"pil.py: {len(errors)} of {len(items)} images failed", file=sys.stderr)
        sys.exit(1)


def shrink_pixelflow(width, height):
    """Pixelflow's JPEG shrink-on-load denominator for the 800x800 box: the largest d in 8, 4, 2
    with d <= source/output along the less-shrunk axis, else 1."""
    scale = min(BOX[0] / width, BOX[1] / height, 1.0)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    factor = min(width / out_w, height / out_h)
    return next((d for d in (8, 4, 2) if d <= factor), 1)


def shrink_sharp(width, height):
    """sharp's (fastShrinkOnLoad, its default): the largest d in 8, 4, 2 with d <= the shrink,
    halved when the shrink's whole part equals d (libjpeg rounding), else 1."""
    factor = max(width / BOX[0], height / BOX[1])
    d = next((d for d in (8, 4, 2) if d <= factor), 1)
    return d // 2 if d > 1 and int(factor) == d else d


def shrink_pillow(width, height):
    """Pillow's `thumbnail` draft: the largest d in 8, 4, 2, 1 with d <= the source over twice the
    box (reducing_gap=2), in whole numbers, on both axes."""
    factor = min(width // (2 * BOX[0]), height // (2 * BOX[1]))
    return next((d for d in (8, 4, 2) if d <= factor), 1)


def info(folder):
    files = images(folder)
    out = {"count": len(files), "jpeg": [], "png": [], "megapixels": {}, "scale": {"pixelflow": {}, "sharp": {}, "pillow": {}}}
    for f in files:
        with Image.open(f) as im:
            w, h = im.size
            fmt = im.format
        out["megapixels"][f] = w * h / 1e6
        out["jpeg" if fmt == "JPEG" else "png"].append(f)
        if fmt == "JPEG":
            out["scale"]["pixelflow"][f] = shrink_pixelflow(w, h)
            out["scale"]["sharp"][f] = shrink_sharp(w, h)
            out["scale"]["pillow"][f] = shrink_pillow(w, h)
    print(json.dumps(out))


def dims(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.lower().endswith(".jpg"):
            with Image.open(os.path.join(folder, f)) as im:
                out[stem(f)] = im.size
    print(json.dumps(out))


def main(argv):
    jobs = 2
    if len(argv) >= 3 and argv[1] == "--jobs":
        jobs = int(argv[2])
        argv = argv[:1] + argv[3:]
    cmd, rest = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "thumbnail" and len(rest) == 2:
        run_pool(thumbnail, [(f, rest[1]) for f in images(rest[0])], jobs)
    elif cmd == "decode" and rest:
        run_pool(decode, rest, jobs)
    elif cmd == "info" and len(rest) == 1:
        info(rest[0])
    elif cmd == "dims" and len(rest) == 1:
        dims(rest[0])
    elif cmd == "version":
        import PIL.features

        simd = "post" in Image.__version__ or "simd" in Image.__file__
        print(json.dumps({"pillow": Image.__version__, "libjpeg_turbo": PIL.features.version("libjpeg_turbo"), "simd": simd}))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
