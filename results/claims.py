"""Each method's own claims (``Method.claims``, methods/claims.py) judged on a store's logged metrics.

The rule, per claim and cell (dataset, protocol, noise, method row):

1. Per seed, each side of the claim is one number: a metric's mean over the claim's window of
   that trial (or the side's own window), a per-trial baseline (``clean_rate`` = 1 - the realised
   noise rate from spec.json), or a constant.  The window counts only epochs whose line has the
   claim's ``phase`` and a finite ``during`` metric.  The seed's difference d is left - right for
   ">" and right - left for "<"; the claim holds in that seed when d > 0 (a tie does not hold).
2. A seed the claim cannot be tested on makes the whole cell ``untested``, with the reason: a
   metric not logged or NaN in the window, no clean labels (real noise), a trial too short for an
   epoch window, no epoch where the mechanism ran, hyperparameters the claim does not apply to,
   a missing trial of the method compared against, or one round only where rounds are compared.
   Never ``holds`` on missing data.
3. Across the tested seeds: ``holds`` when d > 0 in every seed, ``fails`` when in none, ``mixed``
   when the seeds disagree ("holds in k of n seeds"), and also ``mixed`` ("too close to call") when
   they agree but |mean d| < the sample std of d over seeds (ddof=1, n >= 2): the seeds' spread is
   larger than the effect.  One seed is judged, and the note says there was no spread to judge by.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from noisybench.core.errors import BenchError
from noisybench.core.seeding import CURRENT_SEEDING
from noisybench.methods.claims import Claim, Quantity, Window
from noisybench.results.aggregate import keep_cells_apart, trial_identity
from noisybench.results.integrity import verified_done_trials, warn

HOLDS, FAILS, MIXED, UNTESTED = "holds", "fails", "mixed", "untested"


@dataclass
class Trial:
    """What judging needs of one finished trial."""

    dataset: str
    protocol: str
    noise: str
    method: str  # the row label (registry name plus --hp overrides)
    base: str  # the registry name, whose claims apply
    seed: int
    lines: list[dict]
    realised_rate: float | None = None
    hparams: dict = field(default_factory=dict)
    overrides: str = ""  # the --hp overrides the label shows; "" for the method's defaults
    seeding: int = CURRENT_SEEDING  # a baseline is found among trials of the same seeding scheme

    @property
    def setting(self) -> tuple[str, str, str]:
        return self.dataset, self.protocol, self.noise


def load_trials(root, echo: Callable[[str], None] = warn) -> list[Trial]:
    """Every finished, verified trial of the store at ``root``, in rows labelled as the tables label
    them: trials of the old seeding scheme or of other plugin versions in cells of their own."""
    verified = list(verified_done_trials(root, echo))
    if not verified:
        return []
    identities = keep_cells_apart(pd.DataFrame([trial_identity(v.record) for v in verified]), echo)
    trials = []
    for one, identity in zip(verified, identities.itertuples(index=False)):
        record = one.record
        trials.append(Trial(
            dataset=identity.dataset, protocol=identity.protocol, noise=identity.noise,
            method=identity.method, base=identity.method_name, seed=int(identity.seed),
            lines=sorted(one.metrics, key=lambda m: m.get("epoch", 0)),
            realised_rate=(record.get("noise") or {}).get("realised_rate"),
            hparams=dict(record.get("hparams") or {}), overrides=identity.hparams, seeding=int(identity.seeding)))
    return trials


@dataclass
class Judgement:
    """One claim on one cell: the per-seed sides and the verdict."""

    dataset: str
    protocol: str
    noise: str
    method: str
    claim: Claim
    verdict: str
    note: str
    left: dict[int, float] = field(default_factory=dict)  # seed -> the left side's value
    right: dict[int, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.left)

    @property
    def held(self) -> int:
        return sum(_difference(self.claim, self.left[s], self.right[s]) > 0 for s in self.left)


class Untestable(Exception):
    """Why one seed cannot test a claim (the message is the reason)."""


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _difference(claim: Claim, left: float, right: float) -> float:
    return left - right if claim.relation == ">" else right - left


def counted_lines(claim: Claim, lines: list[dict]) -> list[dict]:
    """The epochs the claim counts: its phase, and a finite ``during`` metric (the mechanism ran)."""
    if claim.phase is not None:
        lines = [m for m in lines if m.get("phase") == claim.phase]
    if claim.during is not None:
        lines = [m for m in lines if _finite(m.get(claim.during))]
    return lines


def window_epochs(window: Window, total: int) -> tuple[int, int]:
    """The 1-based (first, last) epochs of a fraction or epoch window in a trial of ``total`` epochs."""
    if window.kind == "epoch":
        return int(window.start), int(window.end)
    first = int(math.floor(window.start * total)) + 1
    return first, max(first, int(math.ceil(window.end * total)))


def window_lines(window: Window, lines: list[dict], total: int, what: str) -> list[dict]:
    """The counted ``lines`` that fall in ``window``; raises Untestable when none do."""
    if window.kind == "round":
        rounds = sorted({m.get("round") for m in lines if m.get("round") is not None})
        if not rounds:
            raise Untestable(f"no epoch where {what}")
        chosen = rounds[0] if window.start == 0 else rounds[-1]
        return [m for m in lines if m.get("round") == chosen]
    first, last = window_epochs(window, total)
    if window.kind == "epoch" and total < last:
        raise Untestable(f"the trial ran {total} epochs; the window ({window.text}) needs epoch {last}")
    chosen = [m for m in lines if first <= m.get("epoch", 0) <= last]
    if not chosen:
        raise Untestable(f"no epoch in {first}..{last} where {what}")
    return chosen


def _mechanism(claim: Claim) -> str:
    parts = ([f"phase is {claim.phase}"] if claim.phase else []) + (
        [f"{claim.during} is logged"] if claim.during else [])
    return " and ".join(parts) or "anything was logged"


def side_value(claim: Claim, side: Quantity, trial: Trial, find: Callable[[str, Trial], Trial | None]) -> float:
    """One side of ``claim`` for one seed's trial (raises Untestable with the reason)."""
    if side.value is not None:
        return float(side.value)
    if side.baseline == "clean_rate":
        if trial.realised_rate is None:
            raise Untestable("no clean labels (real noise): the noisy labels' accuracy is unknown")
        return 1.0 - float(trial.realised_rate)
    window = side.window or claim.window
    source = trial
    if side.method is not None:
        source = find(side.method, trial)
        if source is None:
            raise Untestable(f"no finished {side.method} trial of this setting and seed {trial.seed} to compare with")
        lines = source.lines
    else:
        lines = counted_lines(claim, trial.lines)
    if not any(side.metric in m for m in source.lines):
        why = (" -- the dataset has no clean labels (real noise)" if source.realised_rate is None else "")
        raise Untestable(f"{source.base} does not log {side.metric}{why}")
    total = max((m.get("epoch", 0) for m in source.lines), default=0)
    chosen = window_lines(window, lines, total, _mechanism(claim) if side.method is None else "anything was logged")
    values = [m.get(side.metric) for m in chosen]
    if not all(_finite(v) for v in values):
        raise Untestable(f"{side.metric} is missing or NaN in part of the window ({window.text})")
    return float(np.mean(values))


def _needs(claim: Claim, trial: Trial) -> None:
    for name, value in claim.needs:
        have = trial.hparams.get(name)
        if have is None:
            from noisybench.methods.registry import build_hparams

            have = getattr(build_hparams(trial.base, {}), name, None)
        if have != value:
            raise Untestable(f"the claim needs {trial.base}.{name}={value}; this trial has {have}")


def judge(claim: Claim, trials: list[Trial], find: Callable[[str, Trial], Trial | None]) -> Judgement:
    """``claim`` on one cell's trials (one per seed), by the rule of the module docstring."""
    if not trials:
        raise ValueError("judge needs at least one trial")
    first = trials[0]
    out = Judgement(first.dataset, first.protocol, first.noise, first.method, claim, UNTESTED, "")
    reasons = []
    for trial in sorted(trials, key=lambda t: t.seed):
        try:
            _needs(claim, trial)
            left = side_value(claim, claim.left, trial, find)
            right = side_value(claim, claim.right, trial, find)
            same = (claim.left.metric is not None and claim.left.metric == claim.right.metric
                    and claim.left.method == claim.right.method
                    and all(q.window is not None and q.window.kind == "round" for q in (claim.left, claim.right)))
            if same and len({m.get("round") for m in counted_lines(claim, trial.lines)}) < 2:
                raise Untestable("one round only: nothing to compare it with")
        except Untestable as err:
            reasons.append((trial.seed, str(err)))
            continue
        out.left[trial.seed], out.right[trial.seed] = left, right
    if reasons:
        seeds = sorted({s for s, _ in reasons})
        which = "every seed" if len(seeds) == len(trials) else f"seed{'s' if len(seeds) > 1 else ''} " + \
            ", ".join(map(str, seeds))
        out.note = f"{reasons[0][1]} ({which})"
        out.left, out.right = {}, {}
        return out
    diffs = np.array([_difference(claim, out.left[s], out.right[s]) for s in out.left])
    n, held = len(diffs), int((diffs > 0).sum())
    if 0 < held < n:
        out.verdict, out.note = MIXED, f"holds in {held} of {n} seeds"
        return out
    out.verdict = HOLDS if held == n else FAILS
    if n == 1:
        out.note = "1 seed: no spread to judge by"
        return out
    spread = float(diffs.std(ddof=1))
    if abs(float(diffs.mean())) < spread:
        out.verdict = MIXED
        out.note = (f"too close to call: every seed {'holds' if held == n else 'fails'}, but the mean difference "
                    f"{100 * abs(diffs.mean()):.2f} pp is within the seeds' std {100 * spread:.2f} pp")
        return out
    out.note = "in both seeds" if n == 2 else f"in all {n} seeds"
    return out


def finder(trials: list[Trial]) -> Callable[[str, Trial], Trial | None]:
    """find(method, trial): that method's trial (default hyperparameters) of the same setting, seed
    and seeding scheme (trials of two schemes do not share their noisy labels' pairing)."""
    index = {(t.setting, t.base, t.seed, t.seeding): t for t in trials if not t.overrides}

    def find(method: str, trial: Trial) -> Trial | None:
        return index.get((trial.setting, method, trial.seed, trial.seeding))

    return find


def judge_store(trials: list[Trial], claims_of: Callable[[str], tuple[Claim, ...]] | None = None) -> list[Judgement]:
    """Every claim of every cell's method, cells in (dataset, protocol, method, noise) order."""
    from noisybench.results.labels import method_sort_key
    from noisybench.results.tables import noise_sort_key

    claims_of = claims_of or _registered_claims
    by_cell: dict[tuple, list[Trial]] = {}
    for trial in trials:
        by_cell.setdefault((*trial.setting, trial.method), []).append(trial)
    find = finder(trials)
    out = []
    for key in sorted(by_cell, key=lambda k: (k[0], k[1], method_sort_key(k[3], by_cell[k][0].base),
                                               noise_sort_key(k[2]))):
        cell = by_cell[key]
        seeds = [t.seed for t in cell]
        if len(seeds) != len(set(seeds)):
            raise BenchError(f"two finished trials of {key[3]} on {key[0]} {key[2]} share a seed; their specs "
                             f"differ in something the table does not show -- judge them from separate --results")
        for claim in claims_of(cell[0].base):
            out.append(judge(claim, cell, find))
    return out


def _registered_claims(method: str) -> tuple[Claim, ...]:
    from noisybench.methods.registry import get_method

    try:
        return tuple(get_method(method).claims)
    except BenchError:  # a method no longer registered (a plugin not installed): no claims to read
        return ()
