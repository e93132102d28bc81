#!/usr/bin/env python3
"""Copy the trained glyph checkpoints into examples/glyphs/, keeping only what generation reads.

Usage:
    /usr/bin/python3 tools/train/export.py --train out/train --out examples/glyphs

vae.safetensors keeps the quantizer and the decoder (the encoder, quant_conv and the hit statistics
are only for training and encoding); var_*.safetensors drop the attention-mask buffer (a function of
the schedule). Names and values are unchanged (official state-dict names, F32).
"""

import argparse
import fnmatch
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from requires import require  # noqa: E402

require("torch", "numpy")
from common import read_safetensors, write_safetensors  # noqa: E402

DROP = {
    "vae.safetensors": ["encoder.*", "quant_conv.*", "quantize.ema_vocab_hit_SV"],
    "var_standard.safetensors": ["attn_bias_for_masking"],
    "var_bounded.safetensors": ["attn_bias_for_masking"],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for name, drop in DROP.items():
        if not os.path.exists(os.path.join(args.train, name)):
            print(f"{name}: not trained yet, skipped")
            continue
        tensors, meta = read_safetensors(os.path.join(args.train, name), with_metadata=True)
        kept = {k: v for k, v in tensors.items() if not any(fnmatch.fnmatchcase(k, p) for p in drop)}
        write_safetensors(os.path.join(args.out, name), kept, meta)
        size = os.path.getsize(os.path.join(args.out, name))
        print(f"{name}: {len(kept)} of {len(tensors)} tensors, {size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
