"""Instance-dependent ("part-dependent") label noise of Xia et al., NeurIPS 2020.

Reference: xiaoboxia/Part-dependent-label-noise, ``tools.get_instance_noisy_label`` (also
used by Me-Momentum).  The algorithm, for noise rate ``rho`` and ``norm_std = 0.1``:

1. per-sample flip rates ``q_i ~ truncnorm((0 - rho)/0.1, (1 - rho)/0.1, loc=rho, scale=0.1)``;
2. ``W ~ N(0, 1)`` of shape (C, D, C), D the number of pixel values per image;
3. per sample ``a = x_flat @ W[y]``, ``a[y] = -inf``, ``p = q_i * softmax(a)``, ``p[y] += 1 - q_i``;
4. draw the noisy label from ``p``.

Because ``p`` puts mass ``q_i`` on the other classes, the realised rate is about the mean
flip rate, i.e. about ``rho``.  Note what the reference implies at ``rho = 0``: the
truncated normal is cut at its mean, so the flip rates average about 0.08, not 0.

Choices this implementation makes, which change the labels and are therefore fixed:

* ``x_flat`` is the raw uint8 pixel values (0-255) as float64, flattened **channels-first**,
  i.e. an image stored as (C, H, W) is flattened in that order (all of the red plane, then
  green, then blue; this is also the order of CIFAR's python pickles the reference reads).
* All draws come from one seeded ``numpy.random.Generator``, in the reference's order: the
  N flip rates (``truncnorm.rvs(size=N, random_state=rng)``), then ``W``
  (``rng.standard_normal``), then one uniform per sample for the inverse-CDF draw.
* Arithmetic is float64 (the reference uses float32 on the GPU).  With raw pixels the logits
  are in the thousands, so the softmax is nearly one-hot and the precision hardly matters.
"""
from __future__ import annotations

import numpy as np

from noisybench.noise.sampling import sample_from_rows

# Xia et al.'s default spread of the per-sample flip rates (``norm_std`` in the reference).
FLIP_RATE_STD = 0.1
# Images are projected this many at a time: bounds the float64 copy (2,048 CIFAR images: 50 MB).
_CHUNK = 2048


def part_dependent_probabilities(
    images: np.ndarray,
    clean_labels: np.ndarray,
    num_classes: int,
    rate: float,
    rng: np.random.Generator,
    flip_rate_std: float = FLIP_RATE_STD,
) -> np.ndarray:
    """The (N, C) noisy-label distribution of every sample (steps 1-3 of the module docstring).

    ``images``: uint8 (N, C, H, W) as stored, flattened channels-first.  Consumes the flip
    rates and ``W`` from ``rng``.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), got {rate}")
    clean_labels = np.asarray(clean_labels, dtype=np.int64)
    num_samples = len(clean_labels)
    if len(images) != num_samples:
        raise ValueError(f"{len(images)} images but {num_samples} labels")
    flat_images = images.reshape(num_samples, -1)  # C-order reshape: channels-first flatten
    num_features = flat_images.shape[1]

    from scipy.stats import truncnorm  # imported here: scipy.stats costs `import noise` ~0.5 s

    flip_rates = truncnorm.rvs(
        (0.0 - rate) / flip_rate_std,
        (1.0 - rate) / flip_rate_std,
        loc=rate,
        scale=flip_rate_std,
        size=num_samples,
        random_state=rng,
    )
    projections = rng.standard_normal((num_classes, num_features, num_classes))

    logits = np.empty((num_samples, num_classes), dtype=np.float64)
    # Group by clean class so each group is one matrix product with its W[y].
    for cls in range(num_classes):
        members = np.flatnonzero(clean_labels == cls)
        for start in range(0, len(members), _CHUNK):
            chunk = members[start : start + _CHUNK]
            logits[chunk] = flat_images[chunk].astype(np.float64) @ projections[cls]

    rows = np.arange(num_samples)
    logits[rows, clean_labels] = -np.inf  # the flip mass goes to the other classes only
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    probabilities = flip_rates[:, None] * weights / weights.sum(axis=1, keepdims=True)
    probabilities[rows, clean_labels] += 1.0 - flip_rates
    return probabilities


def part_dependent_labels(
    images: np.ndarray,
    clean_labels: np.ndarray,
    num_classes: int,
    rate: float,
    rng: np.random.Generator,
    flip_rate_std: float = FLIP_RATE_STD,
) -> np.ndarray:
    """Instance-dependent noisy labels (Xia et al. 2020), int64 (N,), in training order."""
    probabilities = part_dependent_probabilities(images, clean_labels, num_classes, rate, rng, flip_rate_std)
    return sample_from_rows(probabilities, rng)
