"""W7's quality reference: PyTorch trains threadgrad's `chargpt` for N steps and reports the validation loss.

Run by benchmarks/src/w7-quality.ts (which also writes --windows and runs threadgrad), or alone:

    OPENBLAS_CORETYPE=SkylakeX python3 w7_quality.py --steps 2000 [--windows FILE] [--text DIR]

The model is threadgrad's built-in `chargpt` module for module, with its parameter names (token,
position, blocks.i.{norm1, attn, norm2, mlp.0, mlp.2}, norm, head): vocabulary 256, context 64,
width 128, 4 heads, 2 pre-norm blocks, GELU MLP 512, final LayerNorm, Linear head; 470,784
parameters. threadgrad initialises every module as PyTorch does by default (Embedding N(0, 1),
LayerNorm 1 and 0, Linear U(±1/√in) for weight and bias, nn.MultiheadAttention's Xavier-uniform
in_proj_weight and zero biases), so this script keeps PyTorch's defaults, drawn after
torch.manual_seed(seed) in threadgrad's construction order; the draws differ (two generators), the
scheme does not. --init FILE starts from threadgrad's very weights instead: float32 little-endian,
the parameters in registration order (token.weight, position.weight, blocks.0.norm1.weight, ...,
head.bias, the order of named_parameters() here), with FILE.json beside it listing [name, shape].

Data as `threadgrad train --data text:DIR` reads it: the regular files of DIR in sorted name order,
without symbolic links and files with a NUL byte in their first 8 KB, as bytes; the last 10%
(rounded down) is the validation split. Training: Adam lr 1e-3, β (0.9, 0.999), ε 1e-8, and the
cross-entropy mean over every position of each step's windows. --windows FILE gives each step's
window starts in the training split (int32 little-endian: per step the window count, then the
starts), the very windows threadgrad trains on; without it each step draws 32 independent uniform
starts from a torch.Generator. Validation as threadgrad's CLI evaluates a text run: the windows of
64 that start at 0, 64, 128, ... of the validation split (floor((bytes - 1) / 64) of them), in
batches of 32, in eval mode, the summed cross-entropy of every position over the token count.

Prints one JSON object on stdout: valLoss (nats per byte), valBpc, steps, the mean training loss
of the last 100 steps, the first 5 steps' losses, seconds, and what the windows and weights were.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from peer import FORTUNES_DIR

VOCAB, CONTEXT, DIM, HEADS, LAYERS = 256, 64, 128, 4, 2
PARAMETERS = 470_784
BATCH = 32
VAL_FRACTION = 0.1
BINARY_PROBE_BYTES = 8192


def log(msg):
    print(f"w7-quality (pytorch): {msg}", file=sys.stderr, flush=True)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.norm2 = nn.LayerNorm(DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))

    def forward(self, x, mask):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CharGpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.token = nn.Embedding(VOCAB, DIM)
        self.position = nn.Embedding(CONTEXT, DIM)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB)
        self.register_buffer("mask", torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), 1), persistent=False)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.token(ids) + self.position(torch.arange(t))
        for b in self.blocks:
            x = b(x, self.mask[:t, :t])
        return self.head(self.norm(x))


def read_corpus(path):
    """The bytes `--data text:PATH` reads: a file, or a folder's regular text files in sorted name order."""
    if os.path.isfile(path):
        names = [path]
    elif os.path.isdir(path):
        # threadgrad sorts by UTF-16 code units, Python by code points: the same order below U+10000.
        names = [os.path.join(path, n) for n in sorted(os.listdir(path))]
        names = [p for p in names if not os.path.islink(p) and os.path.isfile(p)]
    else:
        raise SystemExit(f"w7_quality.py: text: {path} does not exist (expected a text file or a folder of text files)")
    parts = []
    for p in names:
        with open(p, "rb") as f:
            data = f.read()
        if b"\0" in data[:BINARY_PROBE_BYTES]:
            continue
        parts.append(data)
    text = b"".join(parts)
    if len(text) == 0:
        raise SystemExit(f"w7_quality.py: text: {path} holds no text")
    return torch.frombuffer(bytearray(text), dtype=torch.uint8).long()


def split(tokens):
    val_bytes = math.floor(tokens.shape[0] * VAL_FRACTION)
    return tokens[: tokens.shape[0] - val_bytes], tokens[tokens.shape[0] - val_bytes :]


def read_windows(path, steps, train_bytes):
    """Each step's window starts from --windows FILE, checked against the split they index."""
    flat = np.fromfile(path, dtype="<i4")
    out, at = [], 0
    for s in range(steps):
        if at >= flat.size:
            raise SystemExit(f"w7_quality.py: --windows {path} holds {s} steps' windows, fewer than --steps {steps}")
        n = int(flat[at])
        if n < 1 or at + 1 + n > flat.size:
            raise SystemExit(f"w7_quality.py: --windows {path}: step {s + 1} has a bad window count {n}")
        starts = flat[at + 1 : at + 1 + n]
        if starts.min() < 0 or starts.max() > train_bytes - CONTEXT - 1:
            raise SystemExit(
                f"w7_quality.py: --windows {path}: step {s + 1} starts a window outside 0..{train_bytes - CONTEXT - 1}"
            )
        out.append(torch.from_numpy(starts.astype(np.int64)))
        at += 1 + n
    return out


def load_init(model, path):
    """Copies threadgrad's initial weights from --init FILE (and FILE.json, their names and shapes)."""
    with open(f"{path}.json") as f:
        layout = json.load(f)
    ours = [(n, list(p.shape)) for n, p in model.named_parameters()]
    theirs = [(n, list(shape)) for n, shape in layout]
    if theirs != ours:
        first = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        got = theirs[first] if first < len(theirs) else "nothing"
        want = ours[first] if first < len(ours) else "nothing"
        raise SystemExit(f"w7_quality.py: --init {path}.json: parameter {first} is {got}, this model's is {want}")
    flat = np.fromfile(path, dtype="<f4")
    if flat.size != PARAMETERS:
        raise SystemExit(f"w7_quality.py: --init {path} holds {flat.size} floats, the model has {PARAMETERS} parameters")
    at = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(flat[at : at + p.numel()].copy()).view_as(p))
            at += p.numel()


def evaluate(model, val):
    """threadgrad's validation loss of a text run: consecutive windows of CONTEXT, batches of BATCH."""
    n = (val.shape[0] - 1) // CONTEXT
    offsets = torch.arange(CONTEXT + 1)
    total = 0.0
    model.eval()
    with torch.no_grad():
        for b in range(0, n, BATCH):
            starts = torch.arange(b, min(n, b + BATCH)).unsqueeze(1) * CONTEXT
            w = val[starts + offsets]
            logits = model(w[:, :-1])
            total += float(F.cross_entropy(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1), reduction="sum"))
    model.train()
    return total / (n * CONTEXT), n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    p.add_argument("--text", default=FORTUNES_DIR, help=f"the corpus, a file or folder (default {FORTUNES_DIR})")
    p.add_argument("--windows", help="each step's window starts, as threadgrad draws them (see above)")
    p.add_argument("--init", help="threadgrad's initial weights (see above); default: PyTorch's own draw")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the weights and random windows")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: PyTorch's choice)")
    a = p.parse_args()
    torch.set_flush_denormal(True)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    tokens = read_corpus(a.text)
    train, val = split(tokens)
    torch.manual_seed(a.seed)
    model = CharGpt()
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAMETERS, f"chargpt has {PARAMETERS} parameters, this model has {count}"
    if a.init:
        load_init(model, a.init)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    if a.windows:
        windows = read_windows(a.windows, a.steps, train.shape[0])
        source = f"threadgrad's windows from {a.windows}"
    else:
        gen = torch.Generator().manual_seed(a.seed)
        windows = None
        source = f"independent uniform windows, {BATCH} a step (torch.Generator, seed {a.seed})"
    offsets = torch.arange(CONTEXT + 1)
    losses = []
    t0 = time.perf_counter()
    log(f"{a.steps} steps on {tokens.shape[0]:,} bytes ({train.shape[0]:,} train, {val.shape[0]:,} validation); {source}")
    for s in range(a.steps):
        starts = windows[s] if windows is not None else torch.randint(0, train.shape[0] - CONTEXT, (BATCH,), generator=gen)
        w = train[starts.unsqueeze(1) + offsets]
        opt.zero_grad()
        loss = F.cross_entropy(model(w[:, :-1]).reshape(-1, VOCAB), w[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if (s + 1) % 250 == 0:
            log(f"step {s + 1}: loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - t0
    val_loss, val_windows = evaluate(model, val)
    tail = losses[-100:]
    print(
        json.dumps(
            {
                "impl": f"pytorch {torch.__version__}",
                "steps": a.steps,
                "valLoss": val_loss,
                "valBpc": val_loss / math.log(2),
                "valWindows": val_windows,
                "trainLossLast100": sum(tail) / max(1, len(tail)),
                "seconds": seconds,
                "windows": source,
                "init": f"threadgrad's weights from {a.init}" if a.init else f"PyTorch's default init, manual_seed({a.seed})",
                "firstLosses": losses[:5],
                "seed": a.seed,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
