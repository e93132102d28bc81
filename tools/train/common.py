"""Shared pieces of the training tools: configs, data, checkpoints, safetensors output, loss logs."""

import json
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from torch_var import import_official, load, read_safetensors  # noqa: E402, F401  (shared with bench:torch)

# The shipped glyph models: 32x32 RGB images, 8x8 token maps, 36 classes (0-9, A-Z).
SCHEDULE = [1, 2, 3, 4, 6, 8]
VAE = dict(vocab=512, cv=16, ch=32, ch_mult=[1, 2, 2], res_blocks=1, schedule=SCHEDULE)
VARS = {
    # Official regime: head dim 64, learned temperature up to the official clamp of 100.
    "standard": dict(depth=4, width=128, heads=2, tau_max=100.0),
    # Bounded-entry regime: head dim 4 and temperature clamped to 0.5, so every logit lies in [-0.5, 0.5].
    "bounded": dict(depth=4, width=128, heads=32, tau_max=0.5),
}
CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def load_split(data, name):
    """x float32 [N, 3, H, W] in [-1, 1], y int64 [N]."""
    d = np.load(os.path.join(data, name + ".npz"))
    x = torch.from_numpy(d["x"]).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
    return x, torch.from_numpy(d["y"]).long()


def save_checkpoint(path, **state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    return torch.load(path) if os.path.exists(path) else None


def write_safetensors(path, tensors, metadata=None):
    """Plain safetensors: F32 tensors (I64 for integer buffers), largest element size first, then by name."""
    kinds = {torch.float32: ("F32", 4), torch.int64: ("I64", 8)}
    items = sorted(tensors.items(), key=lambda kv: (-kinds[kv[1].dtype][1], kv[0]))
    header, offset, blobs = {}, 0, []
    for name, t in items:
        t = t.detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {"dtype": kinds[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


class Log:
    """Appends one JSON line per logged step (the loss curves of the model cards)."""

    def __init__(self, path):
        self.path, self.t0 = path, time.time()

    def __call__(self, **row):
        row["seconds"] = round(time.time() - self.t0, 1)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def cosine_lr(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + np.cos(np.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))
