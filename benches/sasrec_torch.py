"""The PyTorch peer of `cargo bench --bench sasrec`: the architecture and training train_sasrec
runs, written as a PyTorch user would (nn.Embedding, nn.Linear, nn.LayerNorm,
F.scaled_dot_product_attention, torch.optim.Adam), trained on the same sequences for a fixed
number of epochs on the CPU, printing one JSON line: epochs, seconds, epochs/s, peak RSS and
the best validation NDCG@10 of the checks (every 5 epochs and the last), as train_sasrec
reports it.

    python sasrec_torch.py SEQUENCES.csv --max-len 200 --epochs 10 --threads 2

SEQUENCES.csv holds (user, item, ts) rows with a header. Like train_sasrec: items indexed in
sorted id order from 1 (0 is padding), each user's items ordered by (ts, item); users with at
least three items; the last item of each held out for validation, the rest trained on as
next-item prediction (inputs s[:-1], targets s[1:]) with a full softmax over the item
embeddings (shared as the output layer, the padding row included); the item embedding scaled
by sqrt(dim) plus a position embedding counted back from the latest item; pre-norm blocks of
causal self-attention (padding never attended) and a ReLU feed-forward layer, dropout after the
embedding, on attention weights, and on each block's two outputs; a final layer norm (eps
1e-6); weights uniform in ±1/sqrt(fan_in) (layer norms 1 and 0); Adam without weight decay;
batches of 128 users sorted by length within windows of 16 batches.
"""

import argparse
import csv
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm_attention = nn.LayerNorm(dim, eps=1e-6)
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)
        self.norm_feed_forward = nn.LayerNorm(dim, eps=1e-6)
        self.up, self.down = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, mask, keep):
        batch, length, dim = x.shape
        split = lambda t: t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)
        normed = self.norm_attention(x)
        attended = F.scaled_dot_product_attention(
            split(self.query(normed)), split(self.key(normed)), split(self.value(normed)),
            attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(batch, length, dim)
        middle = x + F.dropout(self.output(attended), self.dropout, self.training)
        feed_forward = self.down(F.relu(self.up(self.norm_feed_forward(middle))))
        return (middle + F.dropout(feed_forward, self.dropout, self.training)) * keep


class SasRec(nn.Module):
    def __init__(self, items, dim, layers, heads, max_len, dropout):
        super().__init__()
        self.dim, self.max_len, self.dropout = dim, max_len, dropout
        self.items = nn.Embedding(items + 1, dim)
        self.positions = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "norm" not in name:
                    bound = 1.0 / math.sqrt(p.shape[-1])
                    p.uniform_(-bound, bound)

    def forward(self, ids):
        batch, length = ids.shape
        keep = (ids != 0).unsqueeze(-1).float()
        positions = torch.arange(self.max_len - length, self.max_len)
        x = self.items(ids) * math.sqrt(self.dim) + self.positions(positions)
        x = F.dropout(x, self.dropout, self.training) * keep
        # A query sees the keys up to its own position that hold an item, and itself (so a
        # padded query sees something; its output is zeroed).
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
        mask = (causal & (ids != 0).unsqueeze(1)) | torch.eye(length, dtype=torch.bool)
        mask = mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask, keep)
        return self.norm(x)


def padded(sequences, max_len):
    length = max(1, max(min(len(s), max_len) for s in sequences))
    rows = [[0] * (length - len(s[-length:])) + s[-length:] for s in sequences]
    return torch.tensor(rows, dtype=torch.long)


def validation_ndcg(model, usable, items, max_len):
    model.eval()
    total = 0.0
    with torch.no_grad():
        table = model.items.weight[1:]
        order = sorted(range(len(usable)), key=lambda u: len(usable[u]))
        for start in range(0, len(order), 256):
            chunk = [usable[u] for u in order[start:start + 256]]
            histories = [s[:-1] for s in chunk]
            profiles = model(padded(histories, max_len))[:, -1, :]
            scores = profiles @ table.T
            for row, sequence in enumerate(chunk):
                target = sequence[-1] - 1
                s = scores[row].clone()
                target_score = s[target].item()
                s[torch.tensor([i - 1 for i in set(sequence[:-1])], dtype=torch.long)] = -math.inf
                s[target] = -math.inf
                better = int((s > target_score).sum().item())
                if better < 10:
                    total += 1.0 / math.log2(better + 2)
    model.train()
    return total / max(1, len(usable))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sequences")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    rows = []
    with open(args.sequences) as f:
        for record in csv.DictReader(f):
            rows.append((int(record["user_id"]), float(record["ts"]), int(record["item_id"])))
    index = {item: i + 1 for i, item in enumerate(sorted({r[2] for r in rows}))}
    histories = {}
    for user, ts, item in sorted(rows):
        histories.setdefault(user, []).append(index[item])
    usable = [s for _, s in sorted(histories.items()) if len(s) >= 3]
    training = [s[:-1] for s in usable]
    max_len = min(args.max_len, max(len(s) for s in histories.values()))

    model = SasRec(len(index), args.dim, args.layers, args.heads, max_len, args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    best = 0.0
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(training), generator=generator).tolist()
        batches = []
        for w in range(0, len(order), args.batch * 16):
            window = sorted(order[w:w + args.batch * 16], key=lambda u: len(training[u]))
            batches.extend(window[b:b + args.batch] for b in range(0, len(window), args.batch))
        for b in torch.randperm(len(batches), generator=generator).tolist():
            chunk = batches[b]
            inputs = padded([training[u][:-1] for u in chunk], max_len)
            targets = padded([training[u][1:] for u in chunk], max_len).flatten()
            hidden = model(inputs).reshape(-1, args.dim)
            scored = targets != 0
            logits = hidden[scored] @ model.items.weight.T
            loss = F.cross_entropy(logits, targets[scored])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 5 == 0 or epoch == args.epochs:
            best = max(best, validation_ndcg(model, usable, len(index), max_len))
    seconds = time.perf_counter() - started
    print(json.dumps({
        "epochs": args.epochs, "seconds": seconds, "epochs_per_s": args.epochs / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "validation_ndcg10": best, "loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
