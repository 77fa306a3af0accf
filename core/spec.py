"""TrialSpec: one trial as plain data.  Its hash names its directory in the store."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from noisybench.core.seeding import CURRENT_SEEDING, LEGACY_SEEDING

# TrialSpec fields added after trials were first stored, with default None: to_json leaves
# them out while they are None.  Append here when adding such a field.
OMITTED_WHEN_DEFAULT: tuple[str, ...] = ("pretrained", "precision", "plugin")


@dataclass(frozen=True)
class TrialSpec:
    """Everything that decides a trial's numbers (the data root and device do not)."""

    dataset: str
    method: str
    noise: str  # canonical noise spec text, e.g. "sym:0.4"
    seed: int
    protocol: str
    model: str | None = None  # --model override of the protocol's model
    epochs: int | None = None
    batch_size: int | None = None
    hparams: tuple[tuple[str, str], ...] = ()  # sorted (name, value-as-text) overrides
    # Fields added after the first trials were stored; listed in OMITTED_WHEN_DEFAULT.
    pretrained: str | None = None  # absolute path of the initial weights (--pretrained)
    precision: str | None = None  # "bf16" | "fp32" (--precision); None: the device's default
    # "package==version" of each plugin the trial uses (its method, dataset or model: core/plugins.py),
    # comma-joined; None for built-ins only.  A new plugin version is a new trial.
    plugin: str | None = None
    # How the shared streams are seeded (core/seeding.py).  A spec.json without the field was written
    # by noisybench 0.1 under the legacy scheme, which stays out of the JSON so its hash is unchanged.
    seeding: int = CURRENT_SEEDING

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["hparams"] = dict(self.hparams)
        # A later field left at its default stays out of the JSON, so that the hash (and the
        # directory) of every spec written before the field existed does not change.
        for name in OMITTED_WHEN_DEFAULT:
            if data[name] is None:
                del data[name]
        if data["seeding"] == LEGACY_SEEDING:
            del data["seeding"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "TrialSpec":
        data = dict(data)
        data["hparams"] = tuple(sorted((str(k), str(v)) for k, v in dict(data.get("hparams") or {}).items()))
        data.setdefault("seeding", LEGACY_SEEDING)
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:12]

    @property
    def dirname(self) -> str:
        """Readable prefix for people browsing runs/, the hash for uniqueness."""
        noise = re.sub(r"[^A-Za-z0-9.]+", "-", self.noise)[:24]
        return f"{self.dataset}_{self.method}_{noise}_s{self.seed}_{self.hash}"

    def label(self) -> str:
        return f"{self.method} {self.noise} seed {self.seed}"
