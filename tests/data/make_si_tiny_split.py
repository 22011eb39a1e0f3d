"""Regenerate si_tiny_{train,test}.xyz from data/misc/Si_tiny.xyz.gz (Si-GAP-18 subset,
CC BY-NC-SA 4.0, see data/README.md): every 5th dia/bt structure and the second liquid
structure go to the test file, the rest (with the isolated atom) to the training file."""

from collections import defaultdict
from pathlib import Path

import ase.io

here = Path(__file__).parent
frames = ase.io.read(here.parents[1] / "data" / "misc" / "Si_tiny.xyz.gz", ":")
seen = defaultdict(int)
train, test = [], []
for a in frames:
    ct = a.info["config_type"]
    k = seen[ct]
    seen[ct] += 1
    (test if ct != "isolated_atom" and k % 5 == 1 else train).append(a)
ase.io.write(here / "si_tiny_train.xyz", train, format="extxyz")
ase.io.write(here / "si_tiny_test.xyz", test, format="extxyz")
print(len(train), len(test))
