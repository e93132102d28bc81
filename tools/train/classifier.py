#!/usr/bin/env python3
"""The glyph classifier that scores generated images: a small CNN trained on real rendered glyphs.

Usage:
    /usr/bin/python3 tools/train/classifier.py train --data out/glyphs --out out/train
    /usr/bin/python3 tools/train/classifier.py score --out out/train FILE.safetensors...

`train` fits it on train.npz and reports its accuracy on held-out faces (heldout.npz), the
baseline for generated samples. `score` reads varc `outputs.safetensors` files (img f32
[B, 3, H, W] in [0, 1]; labels in the metadata "labels", comma-separated) and prints the
class-conditional accuracy: the fraction of images classified as the class they were made for.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from requires import require  # noqa: E402

require("torch", "numpy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import CLASSES, Log, load_split, read_safetensors  # noqa: E402


def net():
    def block(ci, co):
        return [nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 16, len(CLASSES))
    )


def grey(x):
    """Colour-invariant input: luminance, sign-normalised so that the glyph is bright ([B, 1, H, W] -> 3 ch)."""
    lum = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    border = torch.cat([lum[..., 0, :], lum[..., -1, :], lum[..., :, 0], lum[..., :, -1]], -1).mean(-1)
    sign = torch.where(border.mean(-1, keepdim=True) > lum.mean((2, 3)), -1.0, 1.0)[..., None, None]
    z = (lum - lum.mean((2, 3), keepdim=True)) * sign
    z = z / (z.std((2, 3), keepdim=True) + 1e-3)
    return z.expand(-1, 3, -1, -1)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(grey(x[i : i + 1024])).argmax(1) for i in range(0, len(x), 1024)])
    return (pred == y).float().mean().item(), pred


def train(args):
    torch.manual_seed(2)
    x, y = load_split(args.data, "train")
    xh, yh = load_split(args.data, "heldout")
    model = net()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    log = Log(os.path.join(args.out, "classifier_log.jsonl"))
    steps, g = args.steps, torch.Generator().manual_seed(3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    for step in range(1, steps + 1):
        model.train()
        pick = torch.randint(0, len(x), (128,), generator=g)
        loss = F.cross_entropy(model(grey(x[pick])), y[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps:
            log(step=step, loss=loss.item())
    acc, _ = accuracy(model, xh, yh)
    torch.save(model.state_dict(), os.path.join(args.out, "classifier.pt"))
    with open(os.path.join(args.out, "classifier.json"), "w") as f:
        json.dump({"heldout_accuracy": acc, "heldout_images": len(yh), "steps": steps}, f)
    print(f"held-out faces: accuracy {acc:.4f} on {len(yh)} images")


def read_outputs(path):
    """img in [-1, 1] and the labels of a varc outputs file."""
    tensors, meta = read_safetensors(path, with_metadata=True)
    labels = [int(v) for v in meta["labels"].split(",")]
    return tensors["img"].float() * 2 - 1, torch.tensor(labels)


def score(args):
    model = net()
    model.load_state_dict(torch.load(os.path.join(args.out, "classifier.pt")))
    xs, ys = zip(*[read_outputs(p) for p in args.files])
    x, y = torch.cat(xs), torch.cat(ys)
    acc, pred = accuracy(model, x, y)
    per_class = {CLASSES[c]: (pred[y == c] == c).float().mean().item() for c in y.unique().tolist()}
    print(json.dumps({"accuracy": acc, "images": len(y), "per_class": per_class}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1500)
    s = sub.add_parser("score")
    s.add_argument("--out", required=True)
    s.add_argument("files", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    (train if args.cmd == "train" else score)(args)


if __name__ == "__main__":
    main()
