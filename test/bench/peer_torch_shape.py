"""The PyTorch peer of realShapes.bench.ts: a model of a config.json's shape (GQA, tied or
untied head, Qwen2 q/k/v biases) with random weights, its seven projections NF4 +
double-quant dequantized per step in plain PyTorch (as peer_torch.py), LoRA r 16 on all
seven, gradient checkpointing per block, batch 1, and AdamW on the LoRA weights.
Prints one JSON line: ms/step, tokens/s, peak RSS. Usage: python3 peer_torch_shape.py CONFIG_JSON SEQ STEPS"""
import json, math, resource, sys, time
import torch
from torch.utils.checkpoint import checkpoint

sys.argv += [] if len(sys.argv) >= 4 else []
cfg = json.load(open(sys.argv[1]))
T, steps = int(sys.argv[2]), int(sys.argv[3])
C, H, L, NH = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
NKV = cfg.get("num_key_value_heads", NH)
HS = cfg.get("head_dim") or C // NH
V, R, BLOCK = cfg["vocab_size"], 16, 64
bias = cfg.get("model_type") == "qwen2"
torch.manual_seed(0)
NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0])


class NF4Weight:
    def __init__(self, out_f, in_f):
        self.shape = (out_f, in_f)
        flat = (torch.randn(out_f, in_f) * 0.02).reshape(-1, BLOCK)
        absmax = flat.abs().amax(1)
        scaled = flat / absmax[:, None]
        # Nearest code by midpoints (no (n, 16) distance tensor: that would not fit at 1B).
        mids = (NF4[1:] + NF4[:-1]) / 2
        self.codes = torch.bucketize(scaled, mids).to(torch.uint8)
        self.offset = absmax.mean()
        a = absmax - self.offset
        pad = (-a.numel()) % 256
        a = torch.cat([a, a.new_zeros(pad)]).reshape(-1, 256)
        self.absmax2 = a.abs().amax(1).clamp_min(1e-12)
        self.acodes = torch.round(a / self.absmax2[:, None] * 127).to(torch.int8)
        self.n = absmax.numel()

    def dequantize(self):
        absmax = (self.acodes.float() / 127 * self.absmax2[:, None]).reshape(-1)[: self.n] + self.offset
        return (NF4[self.codes.long()] * absmax[:, None]).reshape(self.shape)


class Linear(torch.nn.Module):
    def __init__(self, out_f, in_f, with_bias=False):
        super().__init__()
        self.w = NF4Weight(out_f, in_f)
        self.b = torch.zeros(out_f) if with_bias else None
        self.A = torch.nn.Parameter(torch.empty(R, in_f).uniform_(-1 / math.sqrt(in_f), 1 / math.sqrt(in_f)))
        self.B = torch.nn.Parameter(torch.zeros(out_f, R))

    def forward(self, x):
        y = x @ self.w.dequantize().t() + (x @ self.A.t() @ self.B.t()) * 2.0
        return y + self.b if self.b is not None else y


def rms(x, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = Linear(NH * HS, C, bias), Linear(NKV * HS, C, bias), Linear(NKV * HS, C, bias)
        self.o = Linear(C, NH * HS)
        self.gate, self.up, self.down = Linear(H, C), Linear(H, C), Linear(C, H)

    def forward(self, x, cos, sin, mask):
        h = rms(x)
        q = self.q(h).view(1, T, NH, HS).transpose(1, 2)
        k = self.k(h).view(1, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, 1)
        v = self.v(h).view(1, T, NKV, HS).transpose(1, 2).repeat_interleave(NH // NKV, 1)
        rot = lambda t: torch.cat([-t[..., HS // 2:], t[..., :HS // 2]], -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HS) + mask, -1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(1, T, NH * HS))
        h = rms(x)
        return x + self.down(torch.nn.functional.silu(self.gate(h)) * self.up(h))


blocks = torch.nn.ModuleList([Block() for _ in range(L)])
embed = (torch.randn(V, C) * 0.02).bfloat16()
head = embed if cfg.get("tie_word_embeddings") else (torch.randn(V, C) * 0.02).bfloat16()
inv = 1.0 / (10000 ** (torch.arange(0, HS // 2).float() * 2 / HS))
ang = torch.arange(T).float()[:, None] * inv[None]
cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
mask = torch.triu(torch.full((T, T), -1e9), 1)
ids, tgt = torch.randint(0, V, (1, T)), torch.randint(0, V, (T,))
opt = torch.optim.AdamW(blocks.parameters(), lr=2e-4)


def chunked_loss(h, chunk=4096):
    # Online log-sum-exp over vocabulary chunks, each chunk recomputed in the backward pass.
    lse = None
    for s in range(0, V, chunk):
        z = checkpoint(lambda hh, s=s: hh @ head[s:s + chunk].float().t(), h, use_reentrant=False)
        m = torch.logsumexp(z, -1)
        lse = m if lse is None else torch.logaddexp(lse, m)
    picked = (h * head[tgt].float()).sum(-1)
    return (lse - picked).mean()


def step():
    x = embed[ids].float()
    for b in blocks:
        x = checkpoint(b, x, cos, sin, mask, use_reentrant=False)
    loss = chunked_loss(rms(x).view(T, C))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
ms = (time.perf_counter() - t0) / steps * 1000
print(json.dumps({"msPerStep": ms, "tokensPerSec": T / ms * 1000, "peakRss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}))
