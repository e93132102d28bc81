#!/usr/bin/env python3
"""The PyTorch side of `deno task bench:torch` (bench/torch.ts): the official VAR code on the CPU.

Needs torch (Debian python3-torch) and a checkout of the official VAR repository
(https://github.com/FoundationVision/VAR), passed as --var-repo; nothing is copied from it.
The official `models` package imports huggingface_hub only for a mixin that inference never
uses; when it is missing, a stub class stands in for it.

Subcommands (each prints one JSON object as the last line of stdout; the official code's own
prints go to stderr):

    probe                              torch version, BLAS library in use, threads, attention path
    weights --out DIR [--seed N]       the official VQVAE + VAR d16 from build_vae_var, seeded,
                                       saved as DIR/var.pth and DIR/vae.pth (state dicts)
    run --weights DIR --labels 0,1     autoregressive_infer_cfg on the checkpoints converted to
        [--threads N] [--warmup N]     safetensors, with the decode (vae.fhat_to_img) timed apart
"""

import argparse
import contextlib
import json
import os
import resource
import struct
import sys
import time
import types

sys.dont_write_bytecode = True  # leave no __pycache__ in the official checkout

PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
DEPTH = 16


def emit(obj):
    print(json.dumps(obj), flush=True)


def blas_libraries():
    """BLAS/LAPACK shared libraries mapped into this process (after a matmul has run)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            name = os.path.basename(path).lower()
            if path.startswith("/") and any(k in name for k in ("blas", "lapack", "mkl_", "libmkl")):
                libs.add(path)
    return sorted(libs)


def import_official(repo):
    """The official `models` package and `dist` module, with a stub for a missing huggingface_hub."""
    if not os.path.isfile(os.path.join(repo, "models", "var.py")):
        raise SystemExit(f"torch_var: {repo} is not a checkout of the official VAR code (no models/var.py)")
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        hub = types.ModuleType("huggingface_hub")

        class PyTorchModelHubMixin:  # only VARHF (hub loading) uses it
            pass

        hub.PyTorchModelHubMixin = PyTorchModelHubMixin
        sys.modules["huggingface_hub"] = hub
    if os.path.abspath(repo) not in sys.path:
        sys.path.insert(0, os.path.abspath(repo))
    import models
    import models.basic_var

    return models


def build(repo, seed):
    """The official d16 VQVAE and VAR, seeded. build_vae_var turns off PyTorch's layer init (it expects
    checkpoints) and then runs VAR.init_weights; the VQ-VAE is left uninitialised, so its layers get
    PyTorch's default init here, from the saved originals."""
    import torch
    import torch.nn as nn

    models = import_official(repo)
    patched = (nn.Linear, nn.LayerNorm, nn.BatchNorm2d, nn.SyncBatchNorm, nn.Conv1d, nn.Conv2d,
               nn.ConvTranspose1d, nn.ConvTranspose2d)
    originals = {clz: clz.reset_parameters for clz in patched}
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(sys.stderr):
        vae, var = models.build_vae_var(device="cpu", patch_nums=PATCH_NUMS, depth=DEPTH, shared_aln=False)
    for clz, fn in originals.items():
        clz.reset_parameters = fn
    for m in vae.modules():
        init = next((originals[c] for c in type(m).__mro__ if c in originals), None)
        if init is not None:
            init(m)
    return vae.eval(), var.eval()


def read_safetensors(path, with_metadata=False):
    """name -> tensor, for the F32/I64/I32 tensors varc writes; with_metadata: (tensors, __metadata__)."""
    import numpy as np
    import torch

    dtypes = {"F32": np.float32, "I64": np.int64, "I32": np.int32}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]  # from the start of the data, which follows the header
        dtype = np.dtype(dtypes[e["dtype"]])
        arr = np.frombuffer(data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin)
        out[name] = torch.from_numpy(arr).reshape(e["shape"])
    return (out, header.get("__metadata__", {})) if with_metadata else out


def load(module, path, may_miss):
    """Loads a checkpoint; only the buffers and layers dropped at conversion may be missing."""
    import fnmatch

    import torch.nn as nn

    sd = read_safetensors(path)
    # nn.Module's own load_state_dict: VQVAE's override passes `assign`, which torch < 2.1 lacks
    missing, unexpected = nn.Module.load_state_dict(module, sd, strict=False)
    bad = [k for k in missing if not any(fnmatch.fnmatchcase(k, p) for p in may_miss)]
    if bad or unexpected:
        raise SystemExit(f"torch_var: {path}: missing {bad[:5]}, unexpected {unexpected[:5]}")


def probe(_args):
    try:
        import torch
    except ImportError as e:
        emit({"error": f"torch is not importable ({e})"})
        return
    a = torch.randn(256, 256)
    _ = a @ a  # maps the BLAS library
    config = torch.__config__.show()
    blas = next((p.split("=", 1)[1] for p in config.replace(",", "\n").split() if p.startswith("BLAS_INFO=")), "?")
    capability = next((line.split(":", 1)[1].strip() for line in config.splitlines() if "CPU capability usage" in line),
                      "?")
    emit({
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "blasInfo": blas,
        "cpuCapability": capability,
        "blasLibraries": blas_libraries(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
        "defaultThreads": torch.get_num_threads(),
    })


def weights(args):
    import torch

    vae, var = build(args.var_repo, args.seed)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    torch.save(var.state_dict(), os.path.join(args.out, "var.pth"))
    torch.save(vae.state_dict(), os.path.join(args.out, "vae.pth"))
    emit({
        "varParams": sum(p.numel() for p in var.parameters()),
        "vaeParams": sum(p.numel() for p in vae.parameters()),
        # what generation uses: all but the encoder side, which the conversion drops
        "vaeDecodeParams": sum(p.numel() for n, p in vae.named_parameters()
                               if not n.startswith(("encoder.", "quant_conv."))),
        "saveSeconds": time.perf_counter() - t0,
    })


def run(args):
    import torch

    torch.set_num_threads(args.threads)
    labels = [int(x) for x in args.labels.split(",")]
    t0 = time.perf_counter()
    # the weights come from the checkpoints; skip VAR.init_weights' 310M truncated-normal draws
    models = import_official(args.var_repo)
    init_weights = models.VAR.init_weights
    models.VAR.init_weights = lambda self, **kw: None
    vae, var = build(args.var_repo, 0)
    models.VAR.init_weights = init_weights
    load(var, os.path.join(args.weights, "var.safetensors"), ["attn_bias_for_masking"])
    load(vae, os.path.join(args.weights, "vae.safetensors"), ["encoder.*", "quant_conv.*"])
    load_s = time.perf_counter() - t0

    # vae_proxy[0] is `vae`: an instance attribute wraps the decode that autoregressive_infer_cfg ends with
    decode_s = [0.0]
    fhat_to_img = vae.fhat_to_img

    def timed_fhat_to_img(f_hat):
        t = time.perf_counter()
        img = fhat_to_img(f_hat)
        decode_s[0] = time.perf_counter() - t
        return img

    vae.fhat_to_img = timed_fhat_to_img
    assert var.vae_proxy[0] is vae
    B = len(labels)
    label_B = torch.tensor(labels, dtype=torch.long)

    def generate():
        t = time.perf_counter()
        with torch.inference_mode():  # as the official demo; its autocast is CUDA-only, so fp32 here
            img = var.autoregressive_infer_cfg(B=B, label_B=label_B, g_seed=args.seed, cfg=args.cfg, top_k=args.top_k,
                                               top_p=args.top_p, more_smooth=False)
        return time.perf_counter() - t, img

    for _ in range(args.warmup):
        generate()
    total, img = generate()
    import models.basic_var as bv

    emit({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blasLibraries": blas_libraries(),
        "attention": "scaled_dot_product_attention" if bv.slow_attn.__module__.startswith("torch")
        else "the official fallback (matmul, softmax, matmul)",
        "images": B,
        "imageShape": list(img.shape),
        "warmup": args.warmup,
        "seconds": {"load": load_s, "beforeDecode": total - decode_s[0], "decode": decode_s[0], "total": total},
        "peakRssGiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30,
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("probe")
    w = sub.add_parser("weights")
    w.add_argument("--var-repo", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("--var-repo", required=True)
    r.add_argument("--weights", required=True)
    r.add_argument("--labels", default="0")
    r.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--cfg", type=float, default=1.5)
    r.add_argument("--top-k", type=int, default=900)
    r.add_argument("--top-p", type=float, default=0.96)
    r.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"probe": probe, "weights": weights, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
