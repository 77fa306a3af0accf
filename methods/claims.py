"""A method's own claims about its mechanism, as data beside its code (``Method.claims``).

A claim is one sentence of its paper (with where it is said) and how the trainer's logged
per-epoch metrics test it: one quantity compared with another, each averaged over a window of
epochs.  A quantity is a metric of the trial's metrics.jsonl, a per-trial baseline the store knows
(``clean_rate``: 1 - the realised noise rate, i.e. the accuracy of the noisy labels themselves), a
constant, or another method's metric on the same dataset, protocol, noise and seed (ELR against
standard).  results/claims.py judges them; nothing here reads a store.
"""
from __future__ import annotations

from dataclasses import dataclass

# Per-trial baselines a Quantity may name (results/claims.py knows how to read each from the store).
BASELINES = {"clean_rate": "the noisy labels' accuracy (1 - realised noise rate)"}


@dataclass(frozen=True)
class Window:
    """The epochs a quantity is averaged over.

    kind "fraction": epochs ``floor(start * E) + 1`` .. ``ceil(end * E)`` of a trial of E epochs
    (at least one); "epoch": 1-based epochs ``start`` .. ``end`` (the paper's own), and a trial
    shorter than ``end`` cannot test it; "round": the epochs of the first (``start`` = 0) or last
    (``start`` = -1) value of the metrics line's ``round`` among the epochs the claim counts.
    ``text`` says it in words (the paper's wording where it has one).
    """

    kind: str = "fraction"
    start: float = 0.0
    end: float = 1.0
    text: str = "all epochs"

    def __post_init__(self):
        if self.kind not in ("fraction", "epoch", "round"):
            raise ValueError(f"Window.kind {self.kind!r}: fraction, epoch or round")
        if self.kind == "fraction" and not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"Window fractions must satisfy 0 <= start < end <= 1, got {self.start}, {self.end}")
        if self.kind == "epoch" and not 1 <= self.start <= self.end:
            raise ValueError(f"Window epochs must satisfy 1 <= start <= end, got {self.start}, {self.end}")
        if self.kind == "round" and self.start not in (0, -1):
            raise ValueError("Window rounds: start=0 (the first round) or start=-1 (the last)")


ALL_EPOCHS = Window()


@dataclass(frozen=True)
class Quantity:
    """One side of a claim: exactly one of ``metric``, ``baseline`` or ``value``.

    metric:   a per-epoch metric of metrics.jsonl, averaged over the window (the claim's, or
              ``window`` where this side has its own, e.g. the last round against the first).
    method:   with ``metric``: read it from this method's trial of the same dataset, protocol,
              noise and seed instead of the claim's own trial.
    baseline: a per-trial number (see BASELINES).
    value:    a constant.
    label:    how the table and figure name it.
    """

    metric: str | None = None
    baseline: str | None = None
    value: float | None = None
    method: str | None = None
    window: Window | None = None
    label: str = ""

    def __post_init__(self):
        if sum(x is not None for x in (self.metric, self.baseline, self.value)) != 1:
            raise ValueError("a Quantity is one of metric, baseline or value")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise ValueError(f"unknown baseline {self.baseline!r}; known: {', '.join(BASELINES)}")
        if self.method is not None and self.metric is None:
            raise ValueError("Quantity.method needs a metric")

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.metric is not None:
            return f"{self.method}'s {self.metric}" if self.method else self.metric
        if self.baseline is not None:
            return BASELINES[self.baseline]
        return f"{self.value:g}"


@dataclass(frozen=True)
class Claim:
    """``left relation right`` over ``window``, in every seed, is what the paper says.

    name:     a short identifier, unique within the method (``dilution``, ``selection``).
    source:   paper and figure, table or section.
    sentence: the claim in one sentence.
    relation: ">" or "<".
    during:   only the epochs where this metric is logged and finite count (the mechanism ran:
              Deep Self-Learning's corrections after its warm-up, GCE's pruning); None: every
              epoch of the window.
    phase:    only the epochs whose metrics line has this ``phase`` (Me-Momentum's "inner").
    needs:    (hparam, value) pairs the claim presupposes (GCE's claim needs truncated=True);
              a trial whose hyperparameters differ cannot test it.
    """

    name: str
    source: str
    sentence: str
    left: Quantity
    relation: str
    right: Quantity
    window: Window = ALL_EPOCHS
    during: str | None = None
    phase: str | None = None
    needs: tuple[tuple[str, object], ...] = ()

    def __post_init__(self):
        if self.relation not in (">", "<"):
            raise ValueError(f"Claim.relation {self.relation!r}: '>' or '<'")

    def metrics(self) -> list[tuple[str | None, str]]:
        """(method, metric) pairs the claim reads; method None: the claim's own trial."""
        out = [(q.method, q.metric) for q in (self.left, self.right) if q.metric is not None]
        if self.during is not None:
            out.append((None, self.during))
        return out


def clean_rate(label: str = "") -> Quantity:
    return Quantity(baseline="clean_rate", label=label)


def memorisation_selection(logits, labels) -> dict:
    """The ``fit_`` selection standard and ELR report for ELR's memorisation claim: the samples whose
    prediction equals their given label, scored by the trainer's epoch meter like any selection
    (``fit_weight_noisy``: the share of mislabelled samples fitted to their wrong label).  Detached,
    on the device: no host sync, and nothing the step trains on changes."""
    return {"fit_": (logits.detach().argmax(dim=1) == labels).float()}
