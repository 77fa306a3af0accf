"""DivideMix's rules as pure functions (Li, Socher, Hoi, "DivideMix: Learning with Noisy Labels as
Semi-supervised Learning", ICLR 2020; official code LiJunnan1992/DivideMix, Train_cifar.py).

Each function is one step of the paper's Algorithm 1, written as the official code computes it;
methods/dividemix.py wires them to the trainer.  They take and return tensors (the GMM fit takes
numpy through scikit-learn, as the official code does) and hold no state.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# Train_cifar.py eval_train: GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4).
GMM_MAX_ITER = 10
GMM_TOL = 1e-2
GMM_REG_COVAR = 5e-4


def normalise_losses(losses: Tensor) -> Tensor:
    """Per-sample losses min-max scaled to [0, 1] (Train_cifar.py eval_train:
    ``(losses - losses.min()) / (losses.max() - losses.min())``), one network at a time.
    A constant vector (max = min) maps to zeros instead of the official 0/0 NaNs."""
    spread = losses.max() - losses.min()
    return (losses - losses.min()) / spread if float(spread) > 0 else torch.zeros_like(losses)


def averaged_history(history: Tensor, count: int, window: int) -> Tensor:
    """The mean of the last ``min(window, count)`` rows of ``history`` (rows oldest first), as
    Train_cifar.py's ``torch.stack(all_loss)[-5:].mean(0)`` at 90% noise ("average loss over
    last 5 epochs to improve convergence stability"); window 1: the newest row alone."""
    used = max(1, min(window, count))
    return history[count - used:count].mean(dim=0)


def gmm_clean_probability(losses: Tensor, random_state: int) -> Tensor:
    """Co-divide's clean probability w_i (DivideMix Sect. 3.1, Eq. 1-2): a two-component Gaussian
    mixture fitted by EM to the normalised per-sample losses; w_i is the posterior of the
    component with the smaller mean (the clean samples' low losses).

    scikit-learn's GaussianMixture with the official settings (max_iter=10, tol=1e-2,
    reg_covar=5e-4, k-means initialisation); ``random_state`` seeds that initialisation, which the
    official code leaves to numpy's global state.  Returns float32 on the losses' device.
    """
    from sklearn.mixture import GaussianMixture  # scikit-learn imports slowly: only when fitting

    values = losses.detach().double().cpu().numpy().reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=GMM_MAX_ITER, tol=GMM_TOL, reg_covar=GMM_REG_COVAR,
                          random_state=random_state)
    import warnings

    with warnings.catch_warnings():  # ten EM steps rarely "converge" by tol: the official code ignores it too
        warnings.simplefilter("ignore")
        gmm.fit(values)
        posterior = gmm.predict_proba(values)[:, int(np.argmin(gmm.means_.ravel()))]
    return torch.from_numpy(posterior.astype(np.float32)).to(losses.device)


def sharpen(probs: Tensor, temperature: float) -> Tensor:
    """Temperature sharpening (DivideMix Eq. 4, from MixMatch): p^(1/T), renormalised per row."""
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


def co_refine(labels_onehot: Tensor, clean_prob: Tensor, probs_view1: Tensor, probs_view2: Tensor,
              temperature: float) -> Tensor:
    """Label co-refinement of labelled samples (DivideMix Sect. 3.2, Eq. 3-4): the noisy one-hot
    label y and the network's mean prediction p over two augmentations, blended by the peer's
    clean probability w, then sharpened: sharpen(w y + (1 - w) (p1 + p2) / 2, T)."""
    w = clean_prob.reshape(-1, 1).to(probs_view1.dtype)
    mean_prediction = (probs_view1 + probs_view2) / 2
    return sharpen(w * labels_onehot + (1 - w) * mean_prediction, temperature)


def co_guess(probs: list[Tensor], temperature: float) -> Tensor:
    """Label co-guessing of unlabelled samples (DivideMix Sect. 3.2): the mean of both networks'
    softmax over both augmentations (Train_cifar.py: four softmaxes / 4), sharpened."""
    return sharpen(torch.stack(probs).mean(dim=0), temperature)


def mix_coefficient(alpha: float, rng: np.random.Generator) -> float:
    """MixMatch's mixup weight (DivideMix Eq. 5-6): l ~ Beta(alpha, alpha), l' = max(l, 1 - l), so
    every mixed sample stays closer to its first input."""
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def mixmatch(inputs: Tensor, targets: Tensor, lam: float, permutation: Tensor, num_mixed: int | None = None
             ) -> tuple[Tensor, Tensor]:
    """MixMatch's mixing (DivideMix Sect. 3.2, Eq. 5-8): every sample of the concatenated
    labelled + unlabelled batch (inputs and soft targets alike) is mixed with the sample the random
    ``permutation`` puts at its place, x' = l x_a + (1 - l) x_b.  ``num_mixed``: keep only the first
    rows (Train_clothing1M.py and Train_webvision.py mix only the labelled part)."""
    if num_mixed is not None:
        mixed = permutation[:num_mixed]
        inputs_a, targets_a = inputs[:num_mixed], targets[:num_mixed]
    else:
        mixed, inputs_a, targets_a = permutation, inputs, targets
    return lam * inputs_a + (1 - lam) * inputs[mixed], lam * targets_a + (1 - lam) * targets[mixed]


def semi_supervised_losses(logits_x: Tensor, targets_x: Tensor, logits_u: Tensor, targets_u: Tensor
                           ) -> tuple[Tensor, Tensor]:
    """(Lx, Lu) of DivideMix Eq. 9-10 (Train_cifar.py SemiLoss): the soft cross-entropy of the mixed
    labelled part, -mean_b sum_c t log softmax, and the mean squared error between the softmax and
    the targets of the mixed unlabelled part, averaged over samples and classes."""
    lx = -(F.log_softmax(logits_x, dim=1) * targets_x).sum(dim=1).mean()
    lu = ((torch.softmax(logits_u, dim=1) - targets_u) ** 2).mean() if logits_u.shape[0] else logits_x.new_zeros(())
    return lx, lu


def unlabelled_weight(current: float, warm_up: float, lambda_u: float, rampup_length: float = 16.0) -> float:
    """The ramped weight of Lu (Train_cifar.py linear_rampup):
    lambda_u * clip((current - warm_up) / rampup_length, 0, 1), with current = epoch +
    batch_idx / num_iter (0-based epoch, num_iter = labelled samples // batch size + 1)."""
    return lambda_u * float(np.clip((current - warm_up) / rampup_length, 0.0, 1.0))


def uniform_prior_penalty(logits: Tensor) -> Tensor:
    """The regulariser L_reg of DivideMix Eq. 11: KL(uniform prior || mean prediction of the mixed
    batch), sum_c (1/C) log((1/C) / mean_b softmax_c), which keeps the predictions from collapsing
    onto few classes."""
    num_classes = logits.shape[1]
    prior = torch.full((num_classes,), 1.0 / num_classes, device=logits.device, dtype=torch.float32)
    mean_prediction = torch.softmax(logits.float(), dim=1).mean(dim=0)
    return (prior * torch.log(prior / mean_prediction)).sum()


def negative_entropy(logits: Tensor) -> Tensor:
    """The confidence penalty of the warm-up under asymmetric noise (DivideMix Sect. 3.1, after
    Pereyra et al. 2017; Train_cifar.py NegEntropy): mean_b sum_c p log p, added to the
    cross-entropy so the warm-up networks do not become over-confident on the flipped labels."""
    probs = torch.softmax(logits.float(), dim=1)
    return (probs.log() * probs).sum(dim=1).mean()


def ensemble_logits(logits1: Tensor, logits2: Tensor) -> Tensor:
    """Test-time prediction (Train_cifar.py test): the two networks' outputs added,
    ``outputs1 + outputs2``; halved here to stay on the logits' scale (the same argmax)."""
    return (logits1 + logits2) / 2
