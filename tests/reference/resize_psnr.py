"""Reference check for Pixelflow's resize: for each (original, pixelflow output) pair, resize the
original with Pillow's Lanczos (a=3, the same filter) to the output's exact size, after applying
its EXIF orientation, and print the PSNR (dB, over RGB, 8-bit) of Pixelflow's output against it.

Usage: python3 resize_psnr.py ORIGINAL OURS [ORIGINAL OURS ...]  -> one JSON object per pair
"""
import json
import math
import sys

from PIL import Image, ImageOps


def psnr(a, b):
    ha, hb = a.tobytes(), b.tobytes()
    se = sum((x - y) ** 2 for x, y in zip(ha, hb))
    mse = se / len(ha)
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def main(args):
    for original, ours in zip(args[0::2], args[1::2]):
        out = Image.open(ours).convert("RGB")
        src = ImageOps.exif_transpose(Image.open(original)).convert("RGB")
        ref = src.resize(out.size, Image.Resampling.LANCZOS)
        print(json.dumps({"original": original, "size": out.size, "psnr": psnr(out, ref)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
