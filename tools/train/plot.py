#!/usr/bin/env python3
"""Draw the training loss curves of the glyph models as one SVG (no plotting library needed).

Usage:
    /usr/bin/python3 tools/train/plot.py --logs out/train --out examples/glyphs/loss_curves.svg
"""

import argparse
import json
import os

PANELS = [
    ("VQ-VAE: L1 + L2 reconstruction + VQ loss", "vqvae_log.jsonl", [("loss", "#1f77b4", "total"), ("l1", "#ff7f0e", "L1")]),
    (
        "VAR: token cross-entropy (nats)",
        None,
        [("var_standard_log.jsonl", "#2ca02c", "standard"), ("var_bounded_log.jsonl", "#d62728", "bounded")],
    ),
]
W, H, PAD = 460, 260, 48


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def panel(x0, title, series):
    """series: [(points [(step, value)], colour, name)]"""
    pts = [p for s, _, _ in series for p in s]
    xmax = max(p[0] for p in pts)
    ymin, ymax = min(p[1] for p in pts), max(p[1] for p in pts)
    ymin, ymax = ymin - 0.05 * (ymax - ymin), ymax + 0.05 * (ymax - ymin)
    sx = lambda x: x0 + PAD + (W - PAD - 10) * x / xmax  # noqa: E731
    sy = lambda y: 30 + (H - 30 - PAD) * (1 - (y - ymin) / (ymax - ymin))  # noqa: E731
    out = [f'<text x="{x0 + W / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>']
    out.append(f'<rect x="{x0 + PAD}" y="30" width="{W - PAD - 10}" height="{H - 30 - PAD}" fill="none" stroke="#888"/>')
    for i in range(5):
        y = ymin + (ymax - ymin) * i / 4
        out.append(f'<text x="{x0 + PAD - 4}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="10">{y:.3g}</text>')
        x = xmax * i / 4
        out.append(f'<text x="{sx(x):.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="10">{x:.0f}</text>')
    out.append(f'<text x="{x0 + W / 2}" y="{H - 12}" text-anchor="middle" font-size="11">training step</text>')
    for k, (points, colour, name) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        out.append(f'<text x="{x0 + W - 20}" y="{46 + 14 * k}" text-anchor="end" font-size="11" fill="{colour}">{name}</text>')
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    body = []
    vq = read(os.path.join(args.logs, "vqvae_log.jsonl"))
    body += panel(0, PANELS[0][0], [([(r["step"], r[k]) for r in vq], c, n) for k, c, n in PANELS[0][2]])
    var = [([(r["step"], r["loss"]) for r in read(os.path.join(args.logs, f))], c, n) for f, c, n in PANELS[1][2]]
    body += panel(W, PANELS[1][0], var)
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" font-family="sans-serif">\n'
    svg += '<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n"
    with open(args.out, "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
