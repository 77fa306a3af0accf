"""Label noise for noisybench: spec parsing, transition matrices, sampling, instance and human noise.

    from noisybench.noise import parse_noise, apply_noise, check_noise_for_dataset
    spec = parse_noise("sym:0.4")                  # NoiseSpec, canonical text "sym:0.4"
    check_noise_for_dataset(spec, dataset)         # BenchError if this dataset cannot take it
    noisy = apply_noise(spec, dataset, seed=0)     # NoisyLabels (labels, matrices, rates)

Conventions (shared/noise.md): symmetric noise follows the transition-matrix convention
(the clean class is never redrawn, realised rate ~R); the noisy labels of a trial depend
only on (dataset name, canonical spec, seed).  Importing the package registers every kind.
"""
from noisybench.noise import kinds as _kinds  # noqa: F401  (registers the built-in kinds)
from noisybench.noise.apply import NoisyLabels, apply_noise, check_noise_for_dataset, nominal_rate
from noisybench.noise.files import load_label_file, save_labels
from noisybench.noise.registry import Sampled, noise_kinds, register_kind
from noisybench.noise.report import format_noise_report
from noisybench.noise.spec import NoiseSpec, parse_noise
from noisybench.noise.transition import (
    asymmetric_transition,
    pair_transition,
    symmetric_transition,
)

__all__ = [
    "NoiseSpec",
    "NoisyLabels",
    "Sampled",
    "apply_noise",
    "asymmetric_transition",
    "check_noise_for_dataset",
    "format_noise_report",
    "load_label_file",
    "noise_kinds",
    "nominal_rate",
    "pair_transition",
    "parse_noise",
    "register_kind",
    "save_labels",
    "symmetric_transition",
]
