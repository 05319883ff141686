"""Writes cmyk-pillow.jpg, the CMYK JPEG fixture of tests/golden.rs, with Pillow: a writer
independent of ours, storing CMYK the Adobe way (inverted, 255 = no ink, APP14 Adobe marker).

    python make_cmyk_pillow.py   # Pillow 13.0.0 made the committed file

32x32, four 16x16 quadrants given as ink (C, M, Y, K), 0-255:
    top-left     (0, 255, 255, 0)    red         -> RGB (255, 0, 0)
    top-right    (255, 0, 0, 0)      cyan        -> RGB (0, 255, 255)
    bottom-left  (0, 0, 0, 128)      half black  -> RGB (127, 127, 127)
    bottom-right (0, 255, 255, 64)   dark red    -> RGB (191, 0, 0)
(RGB by the naive conversion R = (255 - C) * (255 - K) / 255, as no CMYK profile is applied.)
"""
from pathlib import Path

from PIL import Image

QUADRANTS = [(0, 255, 255, 0), (255, 0, 0, 0), (0, 0, 0, 128), (0, 255, 255, 64)]

img = Image.new("CMYK", (32, 32))
for i, ink in enumerate(QUADRANTS):
    x, y = (i % 2) * 16, (i // 2) * 16
    img.paste(ink, (x, y, x + 16, y + 16))
img.save(Path(__file__).with_name("cmyk-pillow.jpg"), quality=95)
