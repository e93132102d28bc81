#!/usr/bin/env python3
"""Train a glyph VAR (official architecture) on the token pyramids of the trained VQ-VAE.

Usage:
    /usr/bin/python3 tools/train/train_var.py --data out/glyphs --out out/train --model standard|bounded
        [--steps 1100] [--threads 1]

The images of OUT/glyphs/train.npz are encoded once by OUT/vqvae.ckpt (cached in
OUT/tokens.pt). Loss: cross-entropy over every token of the pyramid, labels dropped to the
unconditional class 10% of the time (the official cond_drop_rate, which classifier-free guidance
needs). AdamW (0.9, 0.95), weight decay 0.05, warm-up then cosine decay. Resumes from
OUT/var_MODEL.ckpt; logs to OUT/var_MODEL_log.jsonl; at the end writes OUT/var_MODEL.safetensors.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from requires import require  # noqa: E402

require("torch", "numpy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import CLASSES, VAE, VARS, Log, cosine_lr, load_checkpoint, load_split, save_checkpoint  # noqa: E402
from common import write_safetensors  # noqa: E402
from models import VAR, VQVAE  # noqa: E402


def load_vae(out):
    vae = VQVAE(**VAE)
    vae.load_state_dict(load_checkpoint(os.path.join(out, "vqvae.ckpt"))["model"])
    return vae.eval()


def tokens(data, out):
    """Token pyramids [N, L] (int64) and labels [N] of the training images, cached."""
    path = os.path.join(out, "tokens.pt")
    if os.path.exists(path):
        return torch.load(path)
    vae = load_vae(out)
    x, y = load_split(data, "train")
    idx = torch.cat([torch.cat(vae.tokens(x[i : i + 512]), 1) for i in range(0, len(x), 512)])
    torch.save((idx, y), path)
    return idx, y


def split_scales(idx):
    out, at = [], 0
    for pn in VAE["schedule"]:
        out.append(idx[:, at : at + pn * pn])
        at += pn * pn
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", choices=list(VARS), required=True)
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    idx, y = tokens(args.data, args.out)
    quant = load_vae(args.out).quantize
    cfg = VARS[args.model]
    var = VAR(VAE["vocab"], VAE["cv"], len(CLASSES), schedule=VAE["schedule"], **cfg)
    decay = [p for n, p in var.named_parameters() if p.ndim >= 2 and "scale_mul" not in n]
    rest = [p for n, p in var.named_parameters() if not (p.ndim >= 2 and "scale_mul" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95)
    )
    ckpt_path = os.path.join(args.out, f"var_{args.model}.ckpt")
    step = 0
    if (ck := load_checkpoint(ckpt_path)) is not None:
        var.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        print(f"resumed at step {step}")
    log = Log(os.path.join(args.out, f"var_{args.model}_log.jsonl"))
    g = torch.Generator().manual_seed(1000 + step)
    var.train()
    total, seen = 0.0, 0
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, 100)
        pick = torch.randint(0, len(idx), (args.batch,), generator=g)
        target = idx[pick]
        with torch.no_grad():
            x_in = quant.var_input(split_scales(target))
        logits = var(y[pick], x_in)
        loss = F.cross_entropy(logits.reshape(-1, VAE["vocab"]), target.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(var.parameters(), 2.0)
        opt.step()
        step += 1
        total, seen = total + loss.item(), seen + 1
        if step % 50 == 0:
            tau = torch.stack([b.attn.scale_mul_1H11.detach().flatten() for b in var.blocks])
            tau = tau.clamp_max(var.blocks[0].attn.log_tau_max).exp()
            log(step=step, loss=total / seen, tau_min=tau.min().item(), tau_max=tau.max().item())
            total, seen = 0.0, 0
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(ckpt_path, model=var.state_dict(), opt=opt.state_dict(), step=step)
    meta = {"steps": step, "model": args.model, **cfg, "schedule": VAE["schedule"], "classes": CLASSES}
    write_safetensors(os.path.join(args.out, f"var_{args.model}.safetensors"), var.state_dict(), meta)


if __name__ == "__main__":
    main()
