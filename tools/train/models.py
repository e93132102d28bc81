"""The VQ-VAE and VAR of the official VAR code, written for training, with the official state-dict names.

Shapes: B batch, C channels or width, H/W spatial, V vocabulary, Cv code channels, L tokens of the
whole schedule, S scales. The modules and parameter names follow the official `models/` package so
that a state dict saved here loads there (and in varc) unchanged; the arithmetic is the same:
GroupNorm(32, eps 1e-6) + SiLU ResNet blocks, single-head spatial attention at the lowest level
and in the middle, nearest-neighbour upsampling, a multi-scale residual quantizer whose scales are
shared 3x3 "Phi" convolutions (h -> 0.5 h + 0.5 conv(h)), area down-sampling and bicubic
up-sampling, and a VAR of AdaLN blocks with L2-normalised q/k times a learned per-head temperature.
"""

import math

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


def conv3(ci, co, stride=1, padding=1):
    return nn.Conv2d(ci, co, 3, stride=stride, padding=padding)


class ResnetBlock(nn.Module):
    def __init__(self, ci, co):
        super().__init__()
        self.norm1, self.conv1 = norm(ci), conv3(ci, co)
        self.norm2, self.conv2 = norm(co), conv3(co, co)
        self.nin_shortcut = nn.Conv2d(ci, co, 1) if ci != co else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return self.nin_shortcut(x) + self.conv2(F.silu(self.norm2(h)))


class AttnBlock(nn.Module):
    """Single-head attention over the H·W positions, logits scaled by C^-1/2."""

    def __init__(self, c):
        super().__init__()
        self.norm = norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * C**-0.5, dim=2)  # [B, HW(q), HW(k)]
        h = torch.bmm(v, w.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Level(nn.Module):
    pass


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, res_blocks, z):
        super().__init__()
        self.conv_in = conv3(3, ch)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(ch_mult):
            lv = Level()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(res_blocks):
                lv.block.append(ResnetBlock(cin, ch * m))
                cin = ch * m
                if i == len(ch_mult) - 1:
                    lv.attn.append(AttnBlock(cin))
            if i != len(ch_mult) - 1:
                lv.downsample = Level()
                lv.downsample.conv = conv3(cin, cin, stride=2, padding=0)
            self.down.append(lv)
        self.mid = Level()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = ResnetBlock(cin, cin), AttnBlock(cin), ResnetBlock(cin, cin)
        self.norm_out, self.conv_out = norm(cin), conv3(cin, z)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            for i, b in enumerate(lv.block):
                h = b(h)
                if len(lv.attn):
                    h = lv.attn[i](h)
            if hasattr(lv, "downsample"):
                h = lv.downsample.conv(F.pad(h, (0, 1, 0, 1)))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, res_blocks, z):
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = conv3(z, cin)
        self.mid = Level()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = ResnetBlock(cin, cin), AttnBlock(cin), ResnetBlock(cin, cin)
        up = []
        for i in reversed(range(len(ch_mult))):
            lv = Level()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(res_blocks + 1):
                lv.block.append(ResnetBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
                if i == len(ch_mult) - 1:
                    lv.attn.append(AttnBlock(cin))
            if i != 0:
                lv.upsample = Level()
                lv.upsample.conv = conv3(cin, cin)
            up.insert(0, lv)
        self.up = nn.ModuleList(up)
        self.norm_out, self.conv_out = norm(cin), conv3(cin, 3)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for lv in reversed(self.up):
            for i, b in enumerate(lv.block):
                h = b(h)
                if len(lv.attn):
                    h = lv.attn[i](h)
            if hasattr(lv, "upsample"):
                h = lv.upsample.conv(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class Phis(nn.Module):
    """The 4 shared Phi convolutions; scale s of S uses the one whose tick is nearest s/(S-1)."""

    def __init__(self, cv, count=4, ratio=0.5):
        super().__init__()
        self.qresi_ls = nn.ModuleList([conv3(cv, cv) for _ in range(count)])
        self.ratio = ratio
        self.ticks = np.linspace(1 / 3 / count, 1 - 1 / 3 / count, count)  # official PhiPartiallyShared

    def index(self, s, S):
        return int(np.argmin(np.abs(self.ticks - s / (S - 1))))

    def forward(self, h, s, S):
        return h * (1 - self.ratio) + self.qresi_ls[self.index(s, S)](h) * self.ratio


class Quantizer(nn.Module):
    def __init__(self, vocab, cv, schedule, beta=0.25):
        super().__init__()
        self.embedding = nn.Embedding(vocab, cv)
        self.quant_resi = Phis(cv)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(schedule), vocab))
        self.schedule, self.beta = list(schedule), beta

    def nearest(self, z):  # z [N, Cv] -> [N]
        e = self.embedding.weight.detach()
        d = z.square().sum(1, keepdim=True) + e.square().sum(1) - 2 * z @ e.T
        return d.argmin(1)

    def up(self, h, s, n):
        S = len(self.schedule)
        if s != S - 1:
            h = F.interpolate(h, size=(n, n), mode="bicubic")
        return self.quant_resi(h, s, S)

    def forward(self, f):
        """Training: f [B, Cv, n, n] -> (f̂ with straight-through gradient, vq loss, tokens per scale)."""
        B, C, n, _ = f.shape
        S = len(self.schedule)
        rest, fhat = f.detach().clone(), torch.zeros_like(f)
        loss, idx = 0.0, []
        for s, pn in enumerate(self.schedule):
            z = F.interpolate(rest, size=(pn, pn), mode="area") if s != S - 1 else rest
            i = self.nearest(z.permute(0, 2, 3, 1).reshape(-1, C))
            idx.append(i.reshape(B, pn * pn))
            h = self.up(self.embedding(i).reshape(B, pn, pn, C).permute(0, 3, 1, 2), s, n)
            fhat = fhat + h
            rest = rest - h.detach()
            loss = loss + F.mse_loss(fhat.detach(), f) * self.beta + F.mse_loss(fhat, f.detach())
        return (fhat.detach() - f.detach()) + f, loss / S, idx

    @torch.no_grad()
    def tokens(self, f):
        return self.forward(f)[2]

    def var_input(self, idx):
        """Official idxBl_to_var_input: tokens per scale -> teacher-forcing input [B, L - 1, Cv]."""
        B, n, S = idx[0].shape[0], self.schedule[-1], len(self.schedule)
        fhat = torch.zeros(B, self.embedding.weight.shape[1], n, n)
        out = []
        for s in range(S - 1):
            pn = self.schedule[s]
            fhat = fhat + self.up(self.embedding(idx[s]).transpose(1, 2).reshape(B, -1, pn, pn), s, n)
            nxt = self.schedule[s + 1]
            out.append(F.interpolate(fhat, size=(nxt, nxt), mode="area").flatten(2).transpose(1, 2))
        return torch.cat(out, 1)

    def fhat(self, idx):
        B, n = idx[0].shape[0], self.schedule[-1]
        fhat = 0
        for s, pn in enumerate(self.schedule):
            fhat = fhat + self.up(self.embedding(idx[s]).transpose(1, 2).reshape(B, -1, pn, pn), s, n)
        return fhat


class VQVAE(nn.Module):
    def __init__(self, vocab, cv, ch, ch_mult, res_blocks, schedule):
        super().__init__()
        self.encoder = Encoder(ch, ch_mult, res_blocks, cv)
        self.decoder = Decoder(ch, ch_mult, res_blocks, cv)
        self.quantize = Quantizer(vocab, cv, schedule)
        self.quant_conv, self.post_quant_conv = conv3(cv, cv), conv3(cv, cv)

    def forward(self, x):  # x [B, 3, H, W] in [-1, 1]
        fhat, vq, idx = self.quantize(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(fhat)), vq, idx

    @torch.no_grad()
    def tokens(self, x):
        return self.quantize.tokens(self.quant_conv(self.encoder(x)))

    @torch.no_grad()
    def decode(self, fhat):
        return self.decoder(self.post_quant_conv(fhat)).clamp(-1, 1)


class SelfAttention(nn.Module):
    def __init__(self, C, heads, tau_max):
        super().__init__()
        self.heads, self.log_tau_max = heads, math.log(tau_max)
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(C)), nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), min(4.0, tau_max)).log())
        self.proj = nn.Linear(C, C)

    def forward(self, x, bias):  # x [B, T, C], bias [T, T] additive mask
        B, T, C = x.shape
        qkv = F.linear(x, self.mat_qkv.weight, torch.cat([self.q_bias, self.zero_k_bias, self.v_bias]))
        q, k, v = qkv.view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = F.normalize(q, dim=-1) * self.scale_mul_1H11.clamp_max(self.log_tau_max).exp()
        k = F.normalize(k, dim=-1)
        a = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)  # logit scale 1
        return self.proj((a @ v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, C, heads, tau_max, mlp_ratio=4.0):
        super().__init__()
        self.attn = SelfAttention(C, heads, tau_max)
        self.ffn = nn.Module()
        self.ffn.fc1, self.ffn.fc2 = nn.Linear(C, round(C * mlp_ratio)), nn.Linear(round(C * mlp_ratio), C)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.C = C

    def forward(self, x, cond, bias):
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond).view(-1, 1, 6, self.C).unbind(2)
        ln = lambda t: F.layer_norm(t, (self.C,), eps=1e-6)  # noqa: E731
        x = x + self.attn(ln(x) * (s1 + 1) + b1, bias) * g1
        h = ln(x) * (s2 + 1) + b2
        return x + self.ffn.fc2(F.gelu(self.ffn.fc1(h), approximate="tanh")) * g2


class VAR(nn.Module):
    def __init__(self, vocab, cv, classes, depth, width, heads, schedule, tau_max=100.0, cond_drop=0.1):
        super().__init__()
        C, L = width, sum(p * p for p in schedule)
        self.schedule, self.classes, self.C, self.cond_drop = list(schedule), classes, C, cond_drop
        self.word_embed = nn.Linear(cv, C)
        self.class_emb = nn.Embedding(classes + 1, C)
        self.pos_start = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_1LC = nn.Parameter(torch.zeros(1, L, C))
        self.lvl_embed = nn.Embedding(len(schedule), C)
        self.blocks = nn.ModuleList([Block(C, heads, tau_max) for _ in range(depth)])
        self.head_nm = nn.Module()
        self.head_nm.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))
        self.head = nn.Linear(C, vocab)
        lvl = torch.cat([torch.full((p * p,), i) for i, p in enumerate(schedule)])
        self.register_buffer("lvl_1L", lvl.view(1, L))
        self.register_buffer(
            "attn_bias_for_masking", torch.where(lvl[:, None] >= lvl[None, :], 0.0, -torch.inf).view(1, 1, L, L)
        )
        self.init_weights()

    def init_weights(self, adaln=0.5, adaln_gamma=1e-5, head=0.02):
        """Official VAR.init_weights(init_adaln=0.5, init_adaln_gamma=1e-5, init_head=0.02, init_std=-1)."""
        std = (1 / self.C / 3) ** 0.5
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for p in (self.pos_start, self.pos_1LC):
            nn.init.trunc_normal_(p, std=std)
        with torch.no_grad():
            self.head.weight.mul_(head)
            self.head_nm.ada_lin[-1].weight.mul_(adaln)
            for b in self.blocks:
                b.attn.proj.weight.div_(math.sqrt(2 * len(self.blocks)))
                b.ffn.fc2.weight.div_(math.sqrt(2 * len(self.blocks)))
                b.ada_lin[-1].weight[2 * self.C :].mul_(adaln)
                b.ada_lin[-1].weight[: 2 * self.C].mul_(adaln_gamma)

    def forward(self, labels, x_wo_first):
        """Teacher-forced logits [B, L, V]; labels are dropped to the unconditional class at cond_drop."""
        B = labels.shape[0]
        if self.training and self.cond_drop > 0:
            labels = torch.where(torch.rand(B) < self.cond_drop, self.classes, labels)
        cond = self.class_emb(labels)
        x = torch.cat([(cond[:, None] + self.pos_start), self.word_embed(x_wo_first)], 1)
        x = x + self.lvl_embed(self.lvl_1L.expand(B, -1)) + self.pos_1LC
        bias = self.attn_bias_for_masking[0, 0]
        for b in self.blocks:
            x = b(x, cond, bias)
        scale, shift = self.head_nm.ada_lin(cond).view(-1, 1, 2, self.C).unbind(2)
        return self.head(F.layer_norm(x, (self.C,), eps=1e-6) * (scale + 1) + shift)
