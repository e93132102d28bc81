#!/usr/bin/env python3
"""Train the glyph VQ-VAE (official architecture, smaller) on OUT/glyphs/train.npz.

Usage:
    /usr/bin/python3 tools/train/train_vqvae.py --data out/glyphs --out out/train [--steps 1500]

Loss: L1 + L2 reconstruction in [-1, 1] plus the official multi-scale VQ loss (commitment 0.25).
Codes unused for 100 steps are restarted on random encoder residuals (keeps the vocabulary alive).
Resumes from OUT/vqvae.ckpt when present; logs to OUT/vqvae_log.jsonl; at the end writes
OUT/vae.safetensors (official names, all tensors).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from requires import require  # noqa: E402

require("torch", "numpy")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import VAE, Log, cosine_lr, load_checkpoint, load_split, save_checkpoint, write_safetensors  # noqa: E402
from models import VQVAE  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    x, _ = load_split(args.data, "train")
    vae = VQVAE(**VAE)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    ckpt_path = os.path.join(args.out, "vqvae.ckpt")
    step, hits = 0, torch.zeros(VAE["vocab"])
    if (ck := load_checkpoint(ckpt_path)) is not None:
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        print(f"resumed at step {step}")
    log = Log(os.path.join(args.out, "vqvae_log.jsonl"))
    g = torch.Generator().manual_seed(step)
    vae.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.steps, args.lr, 50)
        batch = x[torch.randint(0, len(x), (args.batch,), generator=g)]
        f = vae.quant_conv(vae.encoder(batch))
        fhat, vq, idx = vae.quantize(f)
        rec = vae.decoder(vae.post_quant_conv(fhat))
        l1, l2 = (rec - batch).abs().mean(), F.mse_loss(rec, batch)
        loss = l1 + l2 + vq
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hits += torch.bincount(torch.cat([i.flatten() for i in idx]), minlength=VAE["vocab"]).float()
        step += 1
        if step % 100 == 0:
            dead = (hits == 0).nonzero().flatten()
            if len(dead) and step < args.steps * 0.8:
                with torch.no_grad():  # restart dead codes on encoder outputs at the finest scale
                    z = f.detach().permute(0, 2, 3, 1).reshape(-1, VAE["cv"])
                    vae.quantize.embedding.weight[dead] = z[torch.randint(0, len(z), (len(dead),), generator=g)]
            log(step=step, loss=loss.item(), l1=l1.item(), l2=l2.item(), vq=vq.item(), used=int((hits > 0).sum()))
            hits.zero_()
        if step % 500 == 0 or step == args.steps:
            save_checkpoint(ckpt_path, model=vae.state_dict(), opt=opt.state_dict(), step=step)
    write_safetensors(os.path.join(args.out, "vae.safetensors"), vae.state_dict(), {"steps": step, **VAE})


if __name__ == "__main__":
    main()
