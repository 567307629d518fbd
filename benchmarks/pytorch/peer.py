"""The PyTorch peer of the benchmark suite: W1, W2, W3, W4, W6 and W7 on 1 and 2 threads.

Run by benchmarks/src/peers/pytorch.ts with /usr/bin/python3 and OPENBLAS_CORETYPE=SkylakeX; prints
one JSON row per measurement on stdout, in the suite's row format, and progress on stderr.

    python3 peer.py --workload w6 --threads 1,2 [--quick] [--inputs DIR]

--inputs DIR holds what the suite built for the MLP workloads (W1, W4): mlp-x.f32, mlp-y.i32 (the
rows) and mlp-weights.f32 (the initial weights, layer by layer: weight [out, in], then bias).
Timing follows the suite's tinybench rule: warm-up calls, then at least 10 calls and 2 s (--quick:
1 warm-up call, 2 calls); the rows carry the median, min and max of the calls.
"""

import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FORTUNES_DIR = "/usr/share/games/fortunes"
SEED = 0


def log(msg):
    print(f"pytorch: {msg}", file=sys.stderr, flush=True)


def impl_name(threads):
    major_minor = ".".join(torch.__version__.split(".")[:2])
    return f"pytorch {major_minor}, {threads} thread{'s' if threads > 1 else ''}"


def measure(fn, quick, warmup=3, iterations=10, min_time=2.0):
    """Milliseconds per call: warm-up calls, then at least `iterations` calls and `min_time` seconds."""
    if quick:
        warmup, iterations, min_time = min(warmup, 1), 2, 0.0
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < iterations or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def row(workload, config, threads, unit, per_call, times, note, extra=None):
    """A suite row; `per_call` converts ms per call into the unit (e.g. samples/s)."""
    a, b = per_call(min(times)), per_call(max(times))
    return {
        "workload": workload,
        "config": config,
        "impl": impl_name(threads),
        "peer": True,
        "threads": threads,
        "unit": unit,
        "better": "higher",
        "median": per_call(statistics.median(times)),
        "min": min(a, b),
        "max": max(a, b),
        "samples": len(times),
        "note": note,
        "extra": {"torch": torch.__version__, **(extra or {})},
    }


class BatchStream:
    """Consecutive batches of a seeded shuffle of the rows, reshuffled every epoch (a last partial
    batch is kept, as the trainer keeps it)."""

    def __init__(self, x, y, batch, seed=SEED):
        self.x, self.y, self.batch = x, y, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.order, self.pos = None, 0

    def next(self):
        n = self.x.shape[0]
        if self.order is None or self.pos >= n:
            self.order, self.pos = torch.randperm(n, generator=self.gen), 0
        idx = self.order[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return self.x[idx], self.y[idx]


# --- W3: one float32 matmul ------------------------------------------------------------------------

# The suite's shapes (w3-sgemm.bench.ts): squares, then the W1 step's transposed products at batch 256.
W3_SQUARES = [256, 512, 1024]
W3_MLP = [
    (256, 784, 256, False, True, "fc1 fwd"),
    (256, 256, 784, True, False, "fc1 dW"),
    (256, 256, 256, False, True, "fc2 fwd"),
    (256, 256, 256, True, False, "fc2 dW"),
    (256, 256, 10, False, True, "fc3 fwd"),
    (10, 256, 256, True, False, "fc3 dW"),
]


def run_w3(threads, quick):
    shapes = [(n, n, n, False, False, "") for n in W3_SQUARES] + W3_MLP
    if quick:
        shapes = [shapes[0], W3_MLP[0], W3_MLP[1]]
    gen = torch.Generator().manual_seed(3)
    rows = []
    for m, k, n, ta, tb, what in shapes:
        # Stored as the suite stores them; .t() is a view, as threadgrad passes transpose flags.
        a = torch.randn(*((k, m) if ta else (m, k)), generator=gen)
        b = torch.randn(*((n, k) if tb else (k, n)), generator=gen)
        op_a, op_b = (a.t() if ta else a), (b.t() if tb else b)
        label = f"{m}×{k}×{n} {'Aᵀ' if ta else 'A'}·{'Bᵀ' if tb else 'B'}" + (f" ({what})" if what else "")
        flops = 2 * m * k * n
        for t in threads:
            torch.set_num_threads(t)
            log(f"w3 {label} on {t} thread(s)")
            times = measure(lambda: torch.mm(op_a, op_b), quick)
            rows.append(row("W3 sgemm", label, t, "GFLOP/s", lambda ms: flops / (ms * 1e6), times,
                            "torch.mm (OpenBLAS) on views; allocates C"))
    return rows


# --- W1 and W4: the MLP 784-256-256-10 -------------------------------------------------------------

SIZES = [784, 256, 256, 10]


def mlp(activation, weights):
    layers = []
    for i in range(len(SIZES) - 1):
        layers.append(nn.Linear(SIZES[i], SIZES[i + 1]))
        if i + 2 < len(SIZES):
            layers.append(nn.ReLU() if activation == "relu" else nn.Tanh())
    model = nn.Sequential(*layers)
    if weights is not None:
        with torch.no_grad():
            pos = 0
            for p in model.parameters():
                p.copy_(torch.from_numpy(weights[pos : pos + p.numel()]).view_as(p))
                pos += p.numel()
            if pos != weights.size:
                raise ValueError(f"mlp-weights.f32 holds {weights.size} floats, the MLP has {pos} parameters")
    return model


def mlp_inputs(inputs):
    """The suite's rows and weights, or (absent) seeded random ones of the same sizes."""
    if inputs is None:
        gen = torch.Generator().manual_seed(SEED)
        x = torch.randn(2048, SIZES[0], generator=gen)
        y = torch.randint(0, SIZES[-1], (2048,), generator=gen)
        return x, y, None, "random rows and PyTorch's own initialisation (no --inputs)"
    x = np.fromfile(os.path.join(inputs, "mlp-x.f32"), dtype="<f4")
    y = np.fromfile(os.path.join(inputs, "mlp-y.i32"), dtype="<i4")
    w = np.fromfile(os.path.join(inputs, "mlp-weights.f32"), dtype="<f4")
    if x.size != y.size * SIZES[0]:
        raise ValueError(f"mlp-x.f32 holds {x.size} floats, not {y.size} rows of {SIZES[0]}")
    x = torch.from_numpy(x.copy()).view(-1, SIZES[0])
    y = torch.from_numpy(y.astype(np.int64))
    return x, y, w, "the suite's rows and initial weights"


def run_mlp(workload, threads, quick, inputs):
    x, y, w, source = mlp_inputs(inputs)
    batch = 256
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        model = mlp("relu" if workload == "w1" else "tanh", w)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        stream = BatchStream(x, y, batch)

        def w1_step():
            xb, yb = stream.next()
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        def w4_step():
            xb, yb = stream.next()
            xb = xb.detach().requires_grad_()
            ce = F.cross_entropy(model(xb), yb)
            (dx,) = torch.autograd.grad(ce, [xb], create_graph=True)
            loss = ce + 0.1 * dx.pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        log(f"{workload} on {t} thread(s)")
        times = measure(w1_step if workload == "w1" else w4_step, quick)
        name = "W1 mlp-step" if workload == "w1" else "W4 double-backward"
        note = f"{x.shape[0] // batch} batches reshuffled every epoch; {source}"
        if workload == "w4":
            note = f"torch.autograd.grad(createGraph); {note}"
        rows.append(row(name, f"batch {batch}", t, "samples/s", lambda ms: batch * 1000 / ms, times, note))
    return rows


# --- W6: the cnn preset on Fashion-MNIST -----------------------------------------------------------


def read_idx(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    ndim = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split="train"):
    """(x [N, 1, 28, 28] pixels / 255, y, source), or random N(0, 1) data of that shape when absent."""
    prefix = "train" if split == "train" else "t10k"
    images = os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")
    if os.path.exists(images) and os.path.exists(labels):
        x = torch.from_numpy(read_idx(images).astype(np.float32) / 255).view(-1, 1, 28, 28)
        y = torch.from_numpy(read_idx(labels).astype(np.int64))
        return x, y, f"Fashion-MNIST {split} ({x.shape[0]:,} samples)"
    gen = torch.Generator().manual_seed(SEED)
    n = 32 * 128
    x = torch.randn(n, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return x, y, f"random N(0,1) data of Fashion-MNIST's shape, {n} samples (Fashion-MNIST not found in {FASHION_MNIST_DIR})"


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def run_w6(threads, quick):
    x, y, source = fashion_mnist()
    batch = 128
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        torch.manual_seed(SEED)
        model = cnn()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        stream = BatchStream(x, y, batch)

        def step():
            xb, yb = stream.next()
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        log(f"w6 on {t} thread(s)")
        times = measure(step, quick)
        note = f"consecutive batches of a seeded shuffle of {source}"
        rows.append(row("W6 cnn", f"batch {batch}", t, "samples/s", lambda ms: batch * 1000 / ms, times, note))
    return rows


def run_w6_train(threads, quick):
    """W6's training run: 3 epochs (quick: 1 epoch of 1,024 samples), seconds per epoch and test accuracy."""
    return run_epochs("W6 training", lambda: cnn(), False, 1024, threads, quick)


def run_w2(threads, quick):
    """W2: the ReLU MLP 784-256-256-10 on Fashion-MNIST's rows, 3 epochs (quick: 1 of 4,096 samples)."""
    return run_epochs("W2 fashion-mnist", lambda: mlp("relu", None), True, 4096, threads, quick)


def run_epochs(workload, build, flat, quick_samples, threads, quick):
    """Training epochs at batch 128 with Adam 1e-3 from PyTorch's initialisation after manual_seed(0):
    seconds per epoch (training only) and the test accuracy after the last."""
    x, y, source = fashion_mnist()
    tx, ty, _ = fashion_mnist("test")
    if flat:
        x, tx = x.reshape(x.shape[0], -1), tx.reshape(tx.shape[0], -1)
    if quick:
        x, y = x[:quick_samples], y[:quick_samples]
    epochs = 1 if quick else 3
    batch = 128
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        torch.manual_seed(SEED)
        model = build()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        stream = BatchStream(x, y, batch)
        steps = math.ceil(x.shape[0] / batch)
        times = []
        log(f"{workload}, {epochs} epoch(s) on {t} thread(s)")
        for _ in range(epochs):
            model.train()
            t0 = time.perf_counter()
            for _ in range(steps):
                xb, yb = stream.next()
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            times.append(time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(tx[i : i + 1000]).argmax(1) == ty[i : i + 1000]).sum()) for i in range(0, len(ty), 1000))
        acc = correct / len(ty)
        r = row(workload, f"batch {batch}, {epochs} epoch{'s' if epochs > 1 else ''}", t, "s/epoch", lambda s: s, times,
                f"test accuracy {acc * 100:.2f}%, {x.shape[0]:,} train samples of {source}", {"testAccuracy": acc})
        r["better"] = "lower"
        rows.append(r)
    return rows


# --- W7: a character-level GPT on the fortunes text ------------------------------------------------

VOCAB, CONTEXT, DIM, HEADS, LAYERS, MLP_DIM = 256, 64, 128, 4, 2, 512
W7_PARAMETERS = 470_784


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.ln2 = nn.LayerNorm(DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, MLP_DIM), nn.GELU(), nn.Linear(MLP_DIM, DIM))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class CharGpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, DIM)
        self.pos = nn.Embedding(CONTEXT, DIM)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB)
        self.register_buffer("mask", torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), 1))

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for b in self.blocks:
            x = b(x, self.mask[:t, :t])
        return self.head(self.ln(x))


def fortunes():
    """The bytes of the fortunes files (sorted names; no symlinks, no binary .dat files), or None."""
    if not os.path.isdir(FORTUNES_DIR):
        return None
    parts = []
    for name in sorted(os.listdir(FORTUNES_DIR)):
        path = os.path.join(FORTUNES_DIR, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data[:8192]:
            continue
        parts.append(data)
    text = b"".join(parts)
    return text if len(text) > CONTEXT + 1 else None


def run_w7(threads, quick):
    text = fortunes()
    if text is None:
        gen = torch.Generator().manual_seed(SEED)
        tokens = torch.randint(0, VOCAB, (1 << 20,), generator=gen)
        source = f"random tokens (no fortunes text in {FORTUNES_DIR})"
    else:
        tokens = torch.frombuffer(bytearray(text), dtype=torch.uint8).long()
        source = f"the fortunes text ({len(text):,} bytes, {FORTUNES_DIR})"
    batch = 32
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        torch.manual_seed(SEED)
        model = CharGpt()
        count = sum(p.numel() for p in model.parameters())
        assert count == W7_PARAMETERS, f"W7 must have {W7_PARAMETERS} parameters, this model has {count}"
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(SEED)
        offsets = torch.arange(CONTEXT + 1)

        def step():
            starts = torch.randint(0, tokens.shape[0] - CONTEXT, (batch, 1), generator=gen)
            w = tokens[starts + offsets]
            xb, yb = w[:, :-1], w[:, 1:]
            opt.zero_grad()
            F.cross_entropy(model(xb).reshape(-1, VOCAB), yb.reshape(-1)).backward()
            opt.step()

        log(f"w7 on {t} thread(s)")
        times = measure(step, quick)
        note = f"random windows each step of {source}"
        per_sec = lambda ms: batch * CONTEXT * 1000 / ms  # noqa: E731
        rows.append(row("W7 chargpt", f"batch {batch} × {CONTEXT} tokens", t, "tokens/s", per_sec, times, note,
                        {"parameters": count}))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", required=True, choices=["w1", "w2", "w3", "w4", "w6", "w6-train", "w7"])
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--quick", action="store_true", help="a smoke test: 1 warm-up call, 2 calls")
    p.add_argument("--inputs", help="folder with the MLP workloads' rows and weights (see above)")
    a = p.parse_args()
    threads = [int(v) for v in a.threads.split(",")]
    torch.set_flush_denormal(True)
    if a.workload in ("w1", "w4"):
        rows = run_mlp(a.workload, threads, a.quick, a.inputs)
    elif a.workload == "w2":
        rows = run_w2(threads, a.quick)
    elif a.workload == "w3":
        rows = run_w3(threads, a.quick)
    elif a.workload == "w6":
        rows = run_w6(threads, a.quick)
    elif a.workload == "w6-train":
        rows = run_w6_train(threads, a.quick)
    else:
        rows = run_w7(threads, a.quick)
    for r in rows:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
