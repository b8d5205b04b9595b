#!/usr/bin/env python3
"""Writes a file of N items for `verdict score` (BENCHMARKS.md, batch
scoring): the demo data's rows in turn, each feature jittered by up to
±2 % (seeded), under ids b0000000, b0000001, … (in order, as an export of
records would list them). CSV by default; JSONL when OUT ends in .jsonl.

    bench/items_file.py 1000000 /tmp/items.csv
"""
import csv
import json
import random
import sys
from pathlib import Path

repo = Path(__file__).resolve().parent.parent
n = int(sys.argv[1])
out = Path(sys.argv[2])
names = [
    line.strip()
    for line in (repo / "data/breast_cancer.features.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
with open(repo / "data/breast_cancer.csv") as f:
    reader = csv.reader(f)
    next(reader)  # the scikit-learn header: rows, columns, labels
    rows = [[float(v) for v in row[: len(names)]] for row in reader]

rng = random.Random(14)
jsonl = out.suffix == ".jsonl"
with open(out, "w") as f:
    if not jsonl:
        f.write("id," + ",".join(names) + "\n")
    for i in range(n):
        base = rows[i % len(rows)]
        values = [round(v * (1 + rng.uniform(-0.02, 0.02)), 6) for v in base]
        item_id = f"b{i:07d}"
        if jsonl:
            f.write(json.dumps({"id": item_id, "input": dict(zip(names, values))}) + "\n")
        else:
            f.write(item_id + "," + ",".join(repr(v) for v in values) + "\n")
