"""A plain transcription of the original script's models, the yardstick for our fast path.

Explicit-matmul attention with a triu mask, a Python loop over time for the router's moving
average, full-sequence logits. Parameter names match baselines' so a state dict loads across.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines import ModelConfig


class RefConv(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.kernel_logits = nn.Parameter(torch.zeros(cfg.n_heads, cfg.kernel_size))

    def forward(self, x):
        c = self.cfg
        v = F.pad(self.v_proj(x).transpose(1, 2), (c.kernel_size - 1, 0))
        kernel = F.softmax(self.kernel_logits, dim=-1).unsqueeze(1).expand(-1, c.head_dim, -1)
        out = F.conv1d(v, kernel.reshape(c.d_model, 1, c.kernel_size), groups=c.d_model)
        return self.out(out.transpose(1, 2))


class RefAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x):
        B, T, C = x.shape
        H, Dh = self.cfg.n_heads, self.cfg.head_dim
        q, k, v = self.qkv(x).reshape(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * Dh ** -0.5
        mask = torch.triu(torch.ones(T, T, device=x.device), diagonal=1).bool()
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(B, T, C))


class RefRouter(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.decay = cfg.ema_decay
        self.net = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2))

    def forward(self, x):
        B, T, C = x.shape
        ctx, ctxs = torch.zeros(B, C, device=x.device), []
        for t in range(T):
            ctx = self.decay * ctx + (1 - self.decay) * x[:, t]
            ctxs.append(ctx)
        logits = self.net(torch.cat([x, torch.stack(ctxs, dim=1)], dim=-1))
        if self.training:
            return F.gumbel_softmax(logits, tau=1.0, hard=True)[:, :, 1]
        return logits.argmax(dim=-1).float()


class RefAttnMixer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn = RefAttention(cfg)

    def forward(self, x):
        return self.attn(x), torch.ones(x.shape[:2])


class RefConvMixer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.conv = RefConv(cfg)

    def forward(self, x):
        return self.conv(x), torch.zeros(x.shape[:2])


class RefRoutedMixer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.conv = RefConv(cfg)
        self.attn = RefAttention(cfg)
        self.router = RefRouter(cfg)

    def forward(self, x):
        g = self.router(x)
        conv_out, attn_out = self.conv(x), self.attn(x)
        w = g.unsqueeze(-1)
        return (1 - w) * conv_out + w * attn_out, g


class RefBlock(nn.Module):
    def __init__(self, cfg, mixer):
        super().__init__()
        d = cfg.d_model
        self.norm1, self.mixer, self.norm2 = nn.LayerNorm(d), mixer, nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        y, g = self.mixer(self.norm1(x))
        x = x + y
        return x + self.ffn(self.norm2(x)), g


class RefLM(nn.Module):
    MIXERS = {"attn": RefAttnMixer, "conv": RefConvMixer, "routed": RefRoutedMixer}

    def __init__(self, name: str, cfg: ModelConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(RefBlock(cfg, self.MIXERS[name](cfg)) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, ids):
        x, gates = self.embedding(ids), []
        for block in self.blocks:
            x, g = block(x)
            gates.append(g)
        return self.head(self.norm(x)), gates
