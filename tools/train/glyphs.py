#!/usr/bin/env python3
"""Render the glyph data set: one class per character, many font faces, augmented, RGB.

Deterministic: the faces are found in fixed Debian font folders, de-duplicated by family and
style and sorted; every image's augmentation comes from a generator seeded by (face, class,
copy). Whole font families are held out for evaluation (a family's hash decides), so the
held-out faces are faces the models and the classifier never saw.

Usage:
    /usr/bin/python3 tools/train/glyphs.py --out out/glyphs [--size 32] [--copies 12]

Writes OUT/train.npz and OUT/heldout.npz (x uint8 [N, size, size, 3], y int64 [N], face int64
[N]) and OUT/faces.json (the face list, which split each face is in).
Needs Debian packages python3-pil, python3-numpy and the fonts: fonts-dejavu-core,
fonts-liberation2, fonts-urw-base35, fonts-noto-core, fonts-freefont-ttf, fonts-crosextra-carlito,
fonts-crosextra-caladea, fonts-lato (any subset works; the set then differs).
"""

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from requires import require  # noqa: E402

require("numpy", "PIL")
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

# Digits and capitals: lower case would add classes that differ from capitals only in size
# (o/O, s/S, x/X, ...), which no class-conditional score can tell apart at 32 px.
CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FONT_DIRS = [
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation2",
    "/usr/share/fonts/opentype/urw-base35",
    "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/truetype/freefont",
    "/usr/share/fonts/truetype/crosextra",
    "/usr/share/fonts/truetype/lato",
]
# Symbol, dingbat, math and script faces: not letters, or not readable as these letters.
EXCLUDE = ("Symbol", "D050000L", "Z003", "Math", "Hairline", "Thin", "ExtraLight", "Light")
# Noto: the Latin faces only (the core package has hundreds of other scripts).
NOTO_LATIN = ("NotoSans-", "NotoSerif-", "NotoSansMono-", "NotoSerifDisplay-", "NotoSansDisplay-")
HI = 128  # glyphs are drawn at this size, transformed, then reduced to --size


def font_files():
    files = []
    for d in FONT_DIRS:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith((".ttf", ".otf")) or any(e in name for e in EXCLUDE):
                continue
            if d.endswith("/noto") and not name.startswith(NOTO_LATIN):
                continue
            files.append(os.path.join(d, name))
    return files


def has_all_glyphs(font):
    """A face is usable when every class renders, and differently from a missing glyph."""
    def bits(ch):
        m = font.getmask(ch)
        return m.size, bytes(m)

    missing = bits("\ue000")
    seen = set()
    for ch in CLASSES:
        b = bits(ch)
        if b[0][0] == 0 or b == missing or b in seen:
            return False
        seen.add(b)
    return True


def faces():
    """[(family, style, path)] sorted, one per (family, style)."""
    out = {}
    for path in font_files():
        try:
            font = ImageFont.truetype(path, 64)
        except OSError:
            continue
        family, style = font.getname()
        if (family, style) in out or not has_all_glyphs(font):
            continue
        out[(family, style)] = path
    return sorted((f, s, p) for (f, s), p in out.items())


def held_out(family):
    """About one family in six is held out, by a hash of its name (stable across machines)."""
    return hashlib.sha256(family.encode()).digest()[0] % 6 == 0


def render(font, ch, rng, size):
    """One augmented RGB glyph, uint8 [size, size, 3]."""
    scale = rng.uniform(0.55, 0.85)  # glyph height as a fraction of the image
    stroke = int(rng.integers(0, 3))  # extra stroke width at HI px
    angle = rng.uniform(-10, 10)
    dx, dy = rng.uniform(-0.1, 0.1, size=2) * HI
    mask = Image.new("L", (2 * HI, 2 * HI), 0)
    draw = ImageDraw.Draw(mask)
    l, t, r, b = draw.textbbox((0, 0), ch, font=font, stroke_width=stroke)
    draw.text((HI - (l + r) / 2, HI - (t + b) / 2), ch, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    k = scale * HI / max(b - t, r - l, 1)
    mask = mask.rotate(angle, resample=Image.BICUBIC, center=(HI, HI))
    side = 2 * HI * k
    mask = mask.resize((max(1, round(side)), max(1, round(side))), Image.LANCZOS)
    canvas = Image.new("L", (HI, HI), 0)
    canvas.paste(mask, (round(HI / 2 - side / 2 + dx), round(HI / 2 - side / 2 + dy)))
    a = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32)[..., None] / 255.0
    fg, bg = colours(rng)
    return np.clip(np.rint(bg + (fg - bg) * a), 0, 255).astype(np.uint8)


def colours(rng):
    """Foreground and background RGB with a luminance contrast of at least 0.4."""
    lum = np.array([0.299, 0.587, 0.114])
    while True:
        fg, bg = rng.uniform(0, 255, size=(2, 3))
        if abs((fg - bg) @ lum) >= 0.4 * 255:
            return fg, bg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--copies", type=int, default=12, help="augmented images per face and class")
    args = ap.parse_args()
    fs = faces()
    if not fs:
        sys.exit("glyphs.py: no usable fonts found in " + ", ".join(FONT_DIRS))
    os.makedirs(args.out, exist_ok=True)
    split = {"train": ([], [], []), "heldout": ([], [], [])}
    for fi, (family, style, path) in enumerate(fs):
        font = ImageFont.truetype(path, 96)
        xs, ys, ids = split["heldout" if held_out(family) else "train"]
        for ci, ch in enumerate(CLASSES):
            for k in range(args.copies):
                rng = np.random.default_rng([fi, ci, k])
                xs.append(render(font, ch, rng, args.size))
                ys.append(ci)
                ids.append(fi)
    for name, (xs, ys, ids) in split.items():
        np.savez(os.path.join(args.out, name + ".npz"), x=np.stack(xs), y=np.array(ys), face=np.array(ids))
        print(f"{name}: {len(xs)} images, {len(set(ids))} faces")
    listing = [{"family": f, "style": s, "file": p, "heldout": held_out(f)} for f, s, p in fs]
    with open(os.path.join(args.out, "faces.json"), "w") as f:
        json.dump({"classes": CLASSES, "size": args.size, "copies": args.copies, "faces": listing}, f, indent=1)


if __name__ == "__main__":
    main()
