"""The small interface every method implements (in the spirit of DomainBed's Algorithm).

A method owns its network(s) and turns one batch into one loss.  The shared trainer
(bench/trainer/) does everything else: data on the device, augmentation, the optimiser
and its schedule, evaluation, metrics, checkpoints.  Clean labels never reach a method;
what a method selects or corrects is reported back in :class:`StepOutput` and the
trainer scores it against the clean labels it keeps back.

Beyond ``train_step`` and ``predict``, a method may implement five hooks: ``resolve`` (a
classmethod, before the sweep hashes or writes anything: every default filled from the trial's
facts, a noisy-validation share and an epoch budget, or a one-line refusal), ``epoch_plan`` (an
epoch's shape, :class:`EpochPlan`: its passes, its lr, its round and phase, or that the method has
finished), ``on_epoch_end``, ``predict_extra`` and ``networks``.
What a method is rather than does is declared as class variables: ``original``,
``needs_in_memory_data``, ``claims``, ``optimizer_per_network``, ``has_stopping_rule``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

from noisybench.methods.claims import Claim


@dataclass(frozen=True)
class Batch:
    """One training batch, on the device.

    ``images`` are normalised (and augmented) floats; ``labels`` the noisy labels the
    method may learn from; ``index`` each sample's position in the training set, so
    that per-sample state (a running label, a confident set) can be kept.
    """

    images: Tensor
    labels: Tensor
    index: Tensor
    # The network the pass that drew it trains (TrainPass.net; None: a pass over every network, or a
    # batch built by hand), and the batch's 0-based step in that pass.
    net: int | None = None
    step: int = 0
    # The pass's companion batch (its own seeded order over the companion subset, cycled), or None.
    companion: "Batch | None" = None
    # Draws one more augmented view of these samples from the trainer's seeded augmentation stream.
    draw_view: Callable[[], Tensor] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def views(self, k: int) -> list[Tensor]:
        """``k`` further augmented views of the same samples (MixMatch's second augmentation),
        drawn in turn from the trainer's seeded augmentation generator; without augmentation
        (or for a hand-built batch) they are ``images`` again."""
        return [self.draw_view() if self.draw_view is not None else self.images for _ in range(k)]


@dataclass(frozen=True)
class TrainPass:
    """One pass over batches within an epoch (``EpochPlan.passes``); the default is a plain epoch's.

    net:        which of ``networks()`` the pass trains, as its batches say (``batch.net``): the
                step reads it, and where the method has one optimiser per network
                (``optimizer_per_network``) only that network's optimiser steps.  None: a pass over
                every network, stepping every optimiser.
    subset:     bool mask over all training samples to draw its batches from (within the training
                split; a subset without training samples gives the pass no batches); None: the
                whole training split.  Either way in the seeded order the pass's place in the
                epoch gives: the first pass of every epoch draws the order a plain epoch draws.
    companion:  bool mask of a second set drawn alongside (DivideMix's unlabelled samples): each
                batch carries ``companion``, a batch of it in its own seeded order, reshuffled and
                cycled when used up; None (or an empty mask): no companion.
    batch_size: its batches' size; None: the protocol's.
    """

    net: int | None = None
    subset: Tensor | None = None
    companion: Tensor | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class EpochPlan:
    """The shape of one epoch, as ``Method.epoch_plan`` returns it; the default is a plain epoch.

    passes:    the epoch's passes over batches, run one after the other (at least one).
    lr_factor: None: the protocol's lr schedule.  A float: this epoch's lr is the protocol's base lr
               times it (with the recipe's momentum), for methods that restart their own schedule
               every round (Me-Momentum).
    round, phase: recorded on the epoch's metrics line as ``round`` and ``phase``.
    finished:  None while the method trains on; once its own stopping rule has ended it, the reason:
               the trainer then trains no further epoch (this one included) and says why.
    """

    passes: tuple[TrainPass, ...] = (TrainPass(),)
    lr_factor: float | None = None
    round: int = 1
    phase: str = "train"
    finished: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "passes", tuple(self.passes))  # a list is taken, a tuple kept
        if not self.passes and self.finished is None:
            raise ValueError("an EpochPlan that trains needs at least one pass (TrainPass() is a plain one)")


PLAIN_EPOCH = EpochPlan()  # one pass over the training split, every optimiser, the protocol's lr


@dataclass
class StepOutput:
    """What one training step returns.

    loss:       the scalar to back-propagate (the trainer calls backward and steps).
    selected:   name -> per-sample weight in [0, 1] (a 0/1 mask for selection methods),
                scored by the trainer (bench/trainer/meter.py) against the clean labels as
                ``{name}kept_fraction`` (weight kept per sample), ``{name}label_precision``
                (clean share of the kept weight), ``{name}label_recall`` (kept share of the clean
                samples) and ``{name}weight_noisy`` (kept share of the mislabelled samples).
                Use "" for a method's single selection, "net2_" etc. for more.
    relabelled: name -> per-sample class predictions the method trains towards (LEND's
                diluted labels, self-learning's corrected labels); scored as
                ``{name}_acc`` against the clean labels.
    stats:      name -> scalar tensor averaged over the epoch's steps, written as ``name``.
    """

    loss: Tensor
    selected: dict[str, Tensor] = field(default_factory=dict)
    relabelled: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodContext:
    """What a method may know about its trial (never the clean labels).

    ``build_network`` returns a fresh network of the protocol's model, on the device,
    initialised from ``network_generator(i)``-derived seeds so that the i-th network of
    a trial is the same on every run.
    """

    num_classes: int
    num_train: int
    epochs: int
    noise_kind: str
    noise_rate: float | None  # the nominal rate (Co-teaching's tau); None when unknown
    device: torch.device
    seed: int
    build_network: Callable[[int], nn.Module]
    batch_size: int | None = None  # the protocol's batch size (None where a caller does not say)
    dataset: str = ""  # the dataset's and protocol's names ("" where a caller does not say)
    protocol: str = ""

    def facts(self) -> "TrialFacts":
        return TrialFacts(self.dataset, self.protocol, self.noise_kind, self.noise_rate, self.num_classes, self.epochs)

    def generator(self, *stream: int) -> torch.Generator:
        """A torch Generator on the CPU for the method's own randomness, seeded by
        (trial seed, *stream) -- e.g. ``ctx.generator(epoch)`` -- never the global RNG."""
        from noisybench.core.seeding import derive_seed

        g = torch.Generator()
        g.manual_seed(derive_seed("method", self.seed, *stream))
        return g


@dataclass(frozen=True)
class OriginalRecipe:
    """A method's own paper recipe, for protocol ``original``.

    ``fields`` are the recipe fields (optimiser, lr, schedule, batch size, epochs, data handling,
    as the method's bench protocol Recipe names them) that its official code sets over the
    dataset's default protocol, and ``source`` says where they come from.  ``per_dataset`` holds
    whole entries (fields, source) that replace them on the datasets where the code used its
    paper's own network (methods/networks/papers.py) or changed its recipe.  Hyperparameter
    defaults travel as the recipe field ``method_hparams`` ((name, --hp text) pairs for fields whose
    own default is None; --hp wins), so that spec.json's recipe records them (SIGUA on MNIST).
    """

    fields: Mapping[str, object]
    source: str
    per_dataset: Mapping[str, tuple[Mapping[str, object], str]] = field(default_factory=dict)

    def for_dataset(self, dataset: str) -> tuple[dict, str]:
        """(fields, source) that ``original`` applies on ``dataset``."""
        fields, source = self.per_dataset.get(dataset, (self.fields, self.source))
        return dict(fields), source


@dataclass(frozen=True)
class TrialFacts:
    """What a trial is, as far as its hyperparameters' defaults may depend on it (``Method.resolve``)."""

    dataset: str
    protocol: str
    noise_kind: str
    noise_rate: float | None  # the nominal rate (Co-teaching's tau); None when unknown
    num_classes: int | None
    epochs: int  # the protocol's (Me-Momentum's rounds, self-learning's warm-up are shares of it)


@dataclass(frozen=True)
class Resolution:
    """What ``Method.resolve`` returns: the hyperparameters with every default filled, where each
    filled value comes from, and what the trainer needs before the first step."""

    hparams: object
    sources: Mapping[str, str] = field(default_factory=dict)  # filled field -> its source
    # Share of the training set held out as noisy validation (the trainer holds out the larger of
    # this and the protocol's val_fraction, split by (dataset, noise, seed) only).
    validation_fraction: float = 0.0
    epoch_budget: int | None = None  # the most epochs the trainer runs; None: the protocol's


class Method(nn.Module):
    """Base class: subclasses set ``Hparams`` (a dataclass) and implement ``train_step``.

    Networks are sub-modules; per-sample state is a registered buffer, so that
    ``state_dict`` (the checkpoint) carries everything a resumed trial needs.
    """

    Hparams: ClassVar[type]
    name: ClassVar[str] = ""
    # The method's own paper recipe for protocol `original`; None: it trains with the shared one.
    original: ClassVar[OriginalRecipe | None] = None
    # Why the method cannot train on a streamed dataset (it draws subsets of the samples each epoch,
    # which a stream's own epoch plan cannot), or None; the sweep refuses such a pair up front.
    needs_in_memory_data: ClassVar[str | None] = None
    # What the method's paper says its mechanism does, tested on the logged metrics by `bench claims`
    # (methods/claims.py: each claim names its source, its sentence, and the metrics that decide it).
    claims: ClassVar[tuple[Claim, ...]] = ()
    # True: one optimiser per network of ``networks()`` (all by the protocol's recipe, on its schedule,
    # in the checkpoint), each stepped only by the passes that train its network (TrainPass.net), as
    # DivideMix's official code steps each network with its own SGD.  False: one optimiser over every
    # parameter of the method.
    optimizer_per_network: ClassVar[bool] = False
    # True: the method's own rule may end its trial (its epoch_plan then says ``finished``), so that
    # a trial running out of its epoch budget is said to have stopped before the rule ended it.
    has_stopping_rule: ClassVar[bool] = False

    def __init__(self, hparams, ctx: MethodContext):
        super().__init__()
        # The trainer hands over resolved hyperparameters (resolving them again changes nothing); a
        # method built by hand gets its defaults filled here, the same way.
        self.hparams = type(self).resolve(hparams, ctx.facts()).hparams
        self.ctx = ctx

    # --- the trainer calls these -------------------------------------------------
    def networks(self) -> list[nn.Module]:
        """The method's networks: ``TrainerView.embed_train`` embeds with the first, and with
        ``optimizer_per_network`` each gets an optimiser of its own (``TrainPass.net`` indexes them)."""
        return [m for m in self.children() if isinstance(m, nn.Module)]

    def epoch_plan(self, epoch: int, trainer: "TrainerView") -> EpochPlan:
        """The shape of 0-based ``epoch``: its passes, its lr, its round and phase, or that the method
        has finished.  Asked once before each epoch's steps, before its lr is set, so the work that
        comes before the steps is done here: a method starting a round resets its networks (and
        calls ``trainer.reset_optimizer()``, the lr then lands on the new optimiser), a phase method
        embeds or predicts the training set through ``trainer``.  A method whose rule has ended it
        returns ``EpochPlan(finished=why)`` and does nothing else, each time it is asked: a trial
        resumed after that trains no further.  Default: a plain epoch."""
        return PLAIN_EPOCH

    def train_step(self, batch: Batch, epoch: int) -> StepOutput:
        raise NotImplementedError

    def predict(self, images: Tensor) -> Tensor:
        """Logits of the evaluated network (net 1 for two-network methods)."""
        raise NotImplementedError

    def predict_extra(self, images: Tensor) -> dict[str, Tensor]:
        """Logits of further networks worth recording, e.g. {"net2": ...} -> test_acc_net2."""
        return {}

    def on_epoch_end(self, epoch: int, trainer: "TrainerView") -> dict[str, float]:
        """Called after each epoch's evaluation; returns extra metrics for the epoch line.

        A metric ``own_selected`` = 1.0 marks the epochs whose model the method's own
        model-selection rule adopts as its answer (Me-Momentum's best-validation model); the
        test accuracy at the last such epoch is the table's "Own" column.
        """
        return {}

    # --- before anything is hashed ------------------------------------------------
    @classmethod
    def resolve(cls, hparams, facts: "TrialFacts") -> "Resolution":
        """Every hyperparameter of a trial filled, from what the trial is (``facts``: dataset,
        protocol, noise, classes, epochs): the fields ``Hparams`` leaves None ("the noise rate", "the
        official script's value for this dataset") take their value here, with its source, before
        the trial is hashed, so that ``coteaching`` and ``coteaching[forget_rate=0.4]`` at sym:0.4 are
        one trial.  Given values (--hp) are never replaced.  Also says what the trainer must know
        before the first step: a noisy-validation share and an epoch budget other than the protocol's.

        Raise a one-line BenchError when these hyperparameters cannot train under these facts (a
        forget rate for noise of unknown rate): the sweep calls this for every trial before any
        trial directory is written.  Default: nothing to fill."""
        return Resolution(hparams)


class TrainerView:
    """What the trainer offers ``epoch_plan`` and ``on_epoch_end`` (bench/trainer/view.py implements it)."""

    def predict_train(self, augment: bool = False) -> Tensor:  # logits (N, C) of the evaluated net
        raise NotImplementedError

    def embed_train(self) -> tuple[Tensor, Tensor]:  # (features (N, d), logits (N, C))
        raise NotImplementedError

    def map_train(self, fn: Callable[[Tensor], Tensor]) -> Tensor:
        """``fn`` (e.g. one of the method's networks) over every training sample, unaugmented, in
        large batches, in eval mode and without gradients: rows in sample order, as float32."""
        raise NotImplementedError

    @property
    def noisy_labels(self) -> Tensor:
        raise NotImplementedError

    @property
    def train_index(self) -> Tensor:  # indices of the training split (validation excluded)
        raise NotImplementedError

    def validation_accuracy(self, augment: bool = False) -> dict[str, float]:
        """This epoch's accuracy on the noisy validation split, {"val_acc", "val_balanced_acc"}
        as fractions (empty without a split); valid in ``on_epoch_end``.  ``augment``: scored
        anew on training-augmented validation images (the recipe's crop + flip, drawn from a
        generator the trainer seeds per epoch), as Me-Momentum's main.py scores its validation."""
        raise NotImplementedError

    def reset_optimizer(self) -> None:  # a fresh optimiser over the method's networks
        raise NotImplementedError

    def report_selection(self, name: str, mask: Tensor) -> None:
        """Score a whole-training-set selection (bool/weight per sample, shape (N,)) against the
        clean labels the method never sees; adds ``{name}kept_fraction``, ``{name}label_precision``
        and ``{name}label_recall`` (over the training split) to this epoch's line."""
        raise NotImplementedError
