#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pth) to a safetensors file that varc reads.

Made for the official VAR checkpoints (var_d16.pth ... var_d36.pth and
vae_ch160v4096z32.pth from the FoundationVision/var Hugging Face repository),
which are plain `torch.save`d state_dicts of fp32 tensors plus an int64
`lvl_1L` buffer. Any checkpoint of tensors works: a plain state_dict, or a dict
wrapping one under a common key such as "model" or "state_dict".

Usage:
    python3 tools/convert_pth.py IN.pth OUT.safetensors [--drop PATTERN ...] [--trust-pickle]

Examples:
    # VAR transformer; the attention mask buffer is unused (20 MB for d36)
    python3 tools/convert_pth.py var_d16.pth var_d16.safetensors \\
        --drop attn_bias_for_masking

    # VQ-VAE; only the quantizer and decoder are needed to generate images
    python3 tools/convert_pth.py vae_ch160v4096z32.pth vae.safetensors \\
        --drop 'encoder.*' 'quant_conv.*'

--drop takes shell-style globs (fnmatch; `*` also matches dots), quoted so the
shell leaves them alone. Dropping is only to save space: varc ignores the
buffers (`attn_bias_for_masking`, `lvl_1L`), the encoder, `quant_conv` and
`quantize.ema_vocab_hit_SV` when they are kept.

The checkpoint is loaded with torch.load(..., weights_only=True) where torch
supports it, which refuses pickled objects other than tensors and plain
containers (torch 1.13 also refuses floats, e.g. an "epoch"/"lr" next to a
wrapped state_dict). The official checkpoints load that way; --trust-pickle
loads a file you trust without the restriction.

Needs only Python 3 and torch (numpy comes with it; without torch it prints how to
install it and exits with status 1); the safetensors format is
written here directly: a u64 little-endian header length N, a UTF-8 JSON header
padded with spaces to a multiple of 8 bytes, then the raw little-endian tensor
data. Tensors are laid out largest element size first, then by name, so each
starts at a multiple of its element size. The output is written to a temporary
file next to OUT and renamed into place once complete.
"""

import argparse
import fnmatch
import inspect
import json
import os
import struct
import sys

# torch dtype name -> (safetensors dtype, element size in bytes)
DTYPE_NAMES = {
    "float64": ("F64", 8),
    "float32": ("F32", 4),
    "float16": ("F16", 2),
    "bfloat16": ("BF16", 2),
    "int64": ("I64", 8),
    "int32": ("I32", 4),
    "int16": ("I16", 2),
    "int8": ("I8", 1),
    "uint8": ("U8", 1),
    "bool": ("BOOL", 1),
}
# Imported by main() once the arguments are read, so --help and usage errors need no torch.
torch = None
DTYPES = {}  # torch dtype -> (safetensors dtype, element size in bytes)

# Keys under which training scripts commonly nest the state_dict, tried in order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net", "ema", "params")


def fail(msg):
    sys.exit(f"convert_pth: {msg}")


def import_torch():
    """Imports torch, or exits with one line saying how to install it."""
    global torch
    try:
        import torch
    except ImportError as err:  # also a torch whose shared libraries are missing
        fail(
            f"needs PyTorch, which {sys.executable} cannot import ({err}); install it, on Debian with "
            "`apt-get install python3-torch libopenblas0-pthread` (then run /usr/bin/python3), or `pip install torch`"
        )
    DTYPES.update({getattr(torch, name): v for name, v in DTYPE_NAMES.items()})


def load_checkpoint(path, trust_pickle):
    """torch.load on the CPU, refusing arbitrary pickled objects where torch supports that."""
    if not trust_pickle and "weights_only" in inspect.signature(torch.load).parameters:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch raises several types here
            fail(
                f"{path}: cannot load with weights_only=True ({type(err).__name__}: {err}); "
                "if the file is from a source you trust, rerun with --trust-pickle"
            )
    if trust_pickle and "weights_only" in inspect.signature(torch.load).parameters:
        return torch.load(path, map_location="cpu", weights_only=False)
    return torch.load(path, map_location="cpu")


def is_state_dict(obj):
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def find_state_dict(ckpt, path):
    """The state_dict in `ckpt` and a description of where it was found."""
    if not isinstance(ckpt, dict):
        fail(f"{path}: expected a dict of tensors, found {type(ckpt).__name__}")
    if is_state_dict(ckpt):
        return ckpt, "top level"
    for key in WRAPPER_KEYS:
        if is_state_dict(ckpt.get(key)):
            return ckpt[key], f'key "{key}"'
    # Nothing wrapped it: report the top level's first non-tensor entry.
    for name, value in ckpt.items():
        if not isinstance(value, torch.Tensor):
            fail(
                f'{path}: entry "{name}": expected a tensor, found {type(value).__name__} '
                f"(and no state_dict under any of {', '.join(WRAPPER_KEYS)})"
            )
    fail(f"{path}: expected a non-empty dict of tensors, found an empty dict")


def tensor_bytes(name, t):
    """Raw little-endian bytes of a tensor, row-major."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16; same bits as int16
        t = t.view(torch.int16)
    arr = t.numpy()
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return arr.tobytes()


def main():
    parser = argparse.ArgumentParser(
        description="Convert a .pth state_dict to safetensors for varc.",
        epilog="Example: %(prog)s var_d16.pth var_d16.safetensors --drop attn_bias_for_masking",
    )
    parser.add_argument("input", metavar="IN.pth")
    parser.add_argument("output", metavar="OUT.safetensors")
    parser.add_argument(
        "--drop",
        metavar="PATTERN",
        nargs="+",
        action="extend",
        default=[],
        help="fnmatch glob of tensor names to leave out (repeatable), e.g. 'encoder.*'",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load with weights_only=False, which runs any code pickled in the file; only for trusted files",
    )
    args = parser.parse_args()
    if not os.path.isfile(args.input):
        fail(f"{args.input}: no such file")
    import_torch()

    sd, where = find_state_dict(load_checkpoint(args.input, args.trust_pickle), args.input)
    print(f"convert_pth: state_dict from {where} of {args.input}")

    kept, dropped = [], []
    used = set()
    for name, t in sd.items():
        if not isinstance(name, str):
            fail(f"{args.input}: expected string tensor names, found {name!r}")
        hits = [p for p in args.drop if fnmatch.fnmatchcase(name, p)]
        if hits:
            used.update(hits)
            dropped.append(name)
            continue
        if t.dtype not in DTYPES:
            fail(
                f'{args.input}: tensor "{name}": expected dtype one of '
                f"{', '.join(str(d) for d in DTYPES)}, found {t.dtype}"
            )
        kept.append((name, t))
    for p in args.drop:
        if p not in used:
            print(f'convert_pth: warning: --drop "{p}" matched no tensor', file=sys.stderr)
    if not kept:
        fail(f"{args.input}: every tensor was dropped; nothing to write")

    kept.sort(key=lambda nt: (-DTYPES[nt[1].dtype][1], nt[0]))
    header, offset = {}, 0
    for name, t in kept:
        dtype, size = DTYPES[t.dtype]
        nbytes = t.numel() * size
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt", "converted_from": os.path.basename(args.input)}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)

    tmp = f"{args.output}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for name, t in kept:
                data = tensor_bytes(name, t)
                begin, end = header[name]["data_offsets"]
                if len(data) != end - begin:
                    fail(f'tensor "{name}": expected {end - begin} bytes, found {len(data)}')
                f.write(data)
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

    total = 8 + len(text) + offset
    print(
        f"convert_pth: wrote {len(kept)} tensors ({offset:,} data bytes, {total:,} bytes in all) "
        f"to {args.output}; dropped {len(dropped)}"
    )


if __name__ == "__main__":
    main()
