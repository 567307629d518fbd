"""The cnn preset's Fashion-MNIST recipe in PyTorch, epoch by epoch: the peer of

    threadgrad train --data fashion-mnist --model cnn --epochs 3 --batch-size 128 --lr 1e-3 [--seed S]

Same network (benchmarks/pytorch/peer.py's cnn()), PyTorch's default initialisation, pixels / 255,
Adam (betas 0.9, 0.999, eps 1e-8), cross-entropy averaged over each batch, a new shuffle every epoch
with the last partial batch kept, and after each epoch the test set's mean loss and accuracy. Prints
one JSON line per epoch (and per step with --print-steps) on stdout:

    OPENBLAS_CORETYPE=SkylakeX python3 fashion_cnn.py --seed 0 --threads 2

--start DIR trains from what benchmarks/scripts/cnn-start.mjs wrote there (threadgrad's initial
parameters and its per-epoch sample orders) instead of PyTorch's own draws, so the step losses can
be set beside those of threadgrad's metrics.jsonl one by one (--steps N stops after N steps).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from peer import cnn, fashion_mnist


def log(msg):
    print(f"fashion_cnn: {msg}", file=sys.stderr, flush=True)


def load_start(model, folder, epochs, n):
    """Sets the model's parameters from DIR/params.f32; returns the epochs' orders from DIR/orders.i32."""
    flat = np.fromfile(os.path.join(folder, "params.f32"), dtype="<f4")
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if flat.size != total:
        sys.exit(f"fashion_cnn: {folder}/params.f32 holds {flat.size} floats, the cnn has {total} parameters")
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(flat[offset : offset + p.numel()].copy()).view_as(p))
            offset += p.numel()
    orders = np.fromfile(os.path.join(folder, "orders.i32"), dtype="<i4")
    if orders.size < epochs * n:
        sys.exit(f"fashion_cnn: {folder}/orders.i32 holds {orders.size // n} epochs of {n}, {epochs} wanted")
    return [torch.from_numpy(orders[e * n : (e + 1) * n].astype(np.int64)) for e in range(epochs)]


def evaluate(model, x, y, batch=1000):
    """Mean cross-entropy and accuracy over the set, in eval mode without gradients."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i : i + batch])
            loss += float(F.cross_entropy(out, y[i : i + batch], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch]).sum())
    model.train()
    return loss / len(y), correct / len(y)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the initial parameters and the shuffle")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--start", help="threadgrad's initial parameters and sample orders (scripts/cnn-start.mjs)")
    p.add_argument("--steps", type=int, help="stop after this many steps")
    p.add_argument("--print-steps", action="store_true", help="a JSON line per step too")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    x, y, source = fashion_mnist()
    tx, ty, _ = fashion_mnist("test")
    torch.manual_seed(a.seed)
    model = cnn()
    orders = load_start(model, a.start, a.epochs, len(y)) if a.start else None
    shuffle = torch.Generator().manual_seed(a.seed)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = math.ceil(len(y) / a.batch_size)
    log(f"{source}; seed {a.seed}, {a.threads} thread(s), {a.epochs} epochs of {steps_per_epoch} steps")
    step = 0
    started = time.perf_counter()
    for epoch in range(a.epochs):
        order = orders[epoch] if orders is not None else torch.randperm(len(y), generator=shuffle)
        loss_sum, correct, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = order[s * a.batch_size : (s + 1) * a.batch_size]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
            seen += len(idx)
            if a.print_steps:
                print(json.dumps({"event": "step", "step": step, "loss": float(loss)}), flush=True)
            if a.steps is not None and step >= a.steps:
                return
        test_loss, test_acc = evaluate(model, tx, ty)
        record = {
            "event": "epoch",
            "epoch": epoch + 1,
            "seed": a.seed,
            "start": "threadgrad" if orders is not None else "pytorch",
            "trainLoss": loss_sum / seen,
            "trainAccuracy": correct / seen,
            "testLoss": test_loss,
            "testAccuracy": test_acc,
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
