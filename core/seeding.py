"""Seeds derived from names and numbers, so that no code needs a global RNG."""
from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (strings, ints): stable across runs and machines."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


# How a trial's shared streams -- its networks' initial weights, its batch order, its augmentation --
# are seeded.  Recorded in every spec.json (``seeding``) and part of the trial hash.
#   1  noisybench 0.1: from the trial's spec hash, so every method and every --hp value of a seed
#      drew its own initialisation and batches (and a respelt value, q=0.70 for q=0.7, drew others).
#   2  common random numbers: from (dataset, model, seed) and the stream's purpose only, so every
#      method and hyperparameter value of a seed starts from the same weights and sees the same
#      batches, and a difference between two rows of one seed is the methods' alone.
LEGACY_SEEDING = 1
CURRENT_SEEDING = 2


def common_seed(purpose: str, dataset: str, model: str, seed: int, *stream: object) -> int:
    """The seed of a stream shared by every method of (dataset, model, seed): ``purpose`` names it
    ("init", "order", "augment", ...), ``stream`` tells its draws apart (a network index, an epoch)."""
    return derive_seed("common", purpose, dataset, model, seed, *stream)
