#!/usr/bin/env python3
"""Run the official VAR code on the shipped glyph weights and write a parity fixture for varc's tests.

Usage:
    /usr/bin/python3 tools/train/make_glyph_fixture.py --var-repo /path/to/VAR \\
        --vae out/train/vae.safetensors --var examples/glyphs/var_standard.safetensors \\
        --data out/glyphs --out tests/fixtures/glyphs_standard

--var-repo is a checkout of the official FoundationVision/VAR repository (never part of this
project). --vae must hold the encoder too (the shipped file drops it): the fixture's token pyramid
is made by the official `img_to_idxBl` from two held-out real glyph images. The official classes
are used unchanged; two settings the official constructors do not take are applied to the built
objects: the VQ-VAE's encoder and decoder are official `Encoder`/`Decoder` instances with this
model's ch_mult (1, 2, 2) and one residual block (the official `VQVAE` hard-codes (1, 1, 2, 2, 4)
and 2), and nothing else changes.

Writes OUT/reference.safetensors (gen.idx_BL, gen.f_hat, gen.img, tf.idx_BL, tf.logits_BLV,
dec.img) and OUT/config.json (settings, labels, versions).
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from requires import require  # noqa: E402

require("torch", "numpy")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import VAE, VARS, import_official, load, write_safetensors  # noqa: E402

LABELS = [3, 17]  # "3" and "H"
SETTINGS = dict(cfg=1.5, top_k=1, top_p=0.0, g_seed=0, more_smooth=False)


def official_models(repo, model):
    import_official(repo)  # the official package, with a stub for a missing huggingface_hub
    from models.basic_vae import Decoder, Encoder
    from models.var import VAR
    from models.vqvae import VQVAE

    v = VAE
    vae = VQVAE(vocab_size=v["vocab"], z_channels=v["cv"], ch=v["ch"], v_patch_nums=tuple(v["schedule"]), test_mode=True)
    dd = dict(ch=v["ch"], ch_mult=tuple(v["ch_mult"]), num_res_blocks=v["res_blocks"], z_channels=v["cv"], dropout=0.0)
    vae.encoder, vae.decoder = Encoder(double_z=False, **dd), Decoder(**dd)
    vae.downsample = 2 ** (len(v["ch_mult"]) - 1)
    c = VARS[model]
    var = VAR(
        vae_local=vae, num_classes=36, depth=c["depth"], embed_dim=c["width"], num_heads=c["heads"], norm_eps=1e-6,
        shared_aln=False, cond_drop_rate=0.0, attn_l2_norm=True, patch_nums=tuple(v["schedule"]),
        flash_if_available=False, fused_if_available=False,
    )
    return vae.eval(), var.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--var-repo", required=True)
    ap.add_argument("--vae", required=True)
    ap.add_argument("--var", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="standard", choices=["standard"])
    ap.add_argument("--var-commit", help="the checkout's commit, when --var-repo is not a git work tree")
    args = ap.parse_args()
    torch.set_num_threads(1)
    vae, var = official_models(args.var_repo, args.model)
    load(vae, args.vae, [])
    load(var, args.var, ["attn_bias_for_masking"])  # the shipped file drops it: the constructor computes it
    B = len(LABELS)
    labels = torch.tensor(LABELS)
    with torch.inference_mode():
        # Greedy generation, recording the sampled tokens (the embedding's inputs), the guided logits'
        # smallest top-1/top-2 gap, and the f̂ the official code decodes.
        seen, idx, gaps = {}, [], []
        S = len(VAE["schedule"])
        h1 = vae.quantize.embedding.register_forward_hook(lambda m, i, o: idx.append(i[0].clone()))

        def gap(m, i, o):
            t = SETTINGS["cfg"] * len(gaps) / (S - 1)
            top2 = ((1 + t) * o[:B] - t * o[B:]).topk(2, dim=-1).values
            gaps.append((top2[..., 0] - top2[..., 1]).min().item())

        h2 = var.head.register_forward_hook(gap)
        fhat_to_img = vae.fhat_to_img
        vae.fhat_to_img = lambda f: (seen.setdefault("f_hat", f.clone()), fhat_to_img(f))[1]
        img = var.autoregressive_infer_cfg(B=B, label_B=labels, **SETTINGS)
        vae.fhat_to_img = fhat_to_img
        h1.remove()
        h2.remove()
        gen_idx = torch.cat([i.reshape(B, -1) for i in idx], 1)
        d = np.load(os.path.join(args.data, "heldout.npz"))
        pick = [int(np.nonzero(d["y"] == lb)[0][0]) for lb in LABELS]
        x = torch.from_numpy(d["x"][pick]).permute(0, 3, 1, 2).float() / 127.5 - 1
        tf_idx = torch.cat(vae.img_to_idxBl(x), 1)
        logits = var(labels, vae.quantize.idxBl_to_var_input(vae.img_to_idxBl(x)))
        dec = vae.idxBl_to_img(vae.img_to_idxBl(x), same_shape=True, last_one=True)
    tensors = {
        "gen.f_hat": seen["f_hat"].float(), "gen.img": img.float(), "tf.idx_BL": tf_idx.long(),
        "tf.logits_BLV": logits.float(), "dec.img": dec.float(),
    }
    tensors["gen.idx_BL"] = gen_idx.long()
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "reference.safetensors"), tensors)
    commit = args.var_commit or subprocess.run(
        ["git", "-C", args.var_repo, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout or "unknown"
    config = {
        "official_code": {"repo": "FoundationVision/VAR", "commit": commit.strip()},
        "torch_version": torch.__version__, "torch_num_threads": 1, "labels": LABELS, "sampling": SETTINGS,
        "heldout_images": pick, "greedy_min_top2_gap_per_scale": gaps, "vae": VAE, "var": VARS[args.model],
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    print(f"wrote {args.out}: {', '.join(f'{k} {list(v.shape)}' for k, v in tensors.items())}")


if __name__ == "__main__":
    main()
