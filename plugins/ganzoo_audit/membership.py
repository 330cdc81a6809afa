"""White-box membership check: does the checkpoint's discriminator score its training images
higher than real images it never saw?

The discriminator sees each image as it saw training batches (the same units, grayscale
repeated to its channels), in eval mode, with no augmentation. AUC 0.5 means it cannot tell
members from non-members; the true-positive rate at 1% false positives is the attack that
matters for a single patient. Both come with percentile-bootstrap 95% intervals (training and
held-out scores resampled separately).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganzoo.api import GAN

BOOTSTRAP = 1000
FPR = 0.01
MAX_MEMBERS = 5000  # training images scored at most (a seeded subset beyond)


@torch.no_grad()
def discriminator_scores(gan: GAN, images: torch.Tensor, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """One discriminator score per uint8 image (N, 1, H, W); higher means "real" to it."""
    net = gan.discriminator.to(device)
    was_training = net.training
    net.eval()
    mean, std = gan.normalization.mean, gan.normalization.std
    scores = []
    try:
        for start in range(0, len(images), batch_size):
            x = (images[start : start + batch_size].float() / 255.0 - mean) / std
            x = x.expand(-1, gan.channels, -1, -1).to(device)
            out = net(x).float().reshape(len(x), -1)
            scores.append(out[:, 0].cpu().numpy().astype(np.float64))
    finally:
        net.train(was_training)
    return np.concatenate(scores) if scores else np.zeros(0)


def auc(members: np.ndarray, others: np.ndarray) -> np.ndarray:
    """AUC of members vs others along the last axis (rank form, ties count half)."""
    from scipy.stats import rankdata

    members, others = np.atleast_2d(members), np.atleast_2d(others)
    m, n = members.shape[-1], others.shape[-1]
    ranks = rankdata(np.concatenate([members, others], axis=-1), axis=-1)
    return (ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2) / (m * n)


def tpr_at_fpr(members: np.ndarray, others: np.ndarray, fpr: float = FPR) -> np.ndarray:
    """Share of members scored above the threshold that at most `fpr` of the others exceed."""
    members, others = np.atleast_2d(members), np.atleast_2d(others)
    threshold = np.quantile(others, 1 - fpr, axis=-1, method="higher")
    return (members > threshold[..., None]).mean(axis=-1)


def membership_statistics(members: np.ndarray, others: np.ndarray, seed: int = 0, bootstrap: int = BOOTSTRAP) -> dict[str, Any]:
    """AUC and TPR at 1% FPR with percentile-bootstrap 95% intervals."""
    rng = np.random.default_rng(seed)
    boot_members = members[rng.integers(0, len(members), (bootstrap, len(members)))]
    boot_others = others[rng.integers(0, len(others), (bootstrap, len(others)))]
    aucs, tprs = auc(boot_members, boot_others), tpr_at_fpr(boot_members, boot_others)
    interval = (lambda values: [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))])
    return {
        "auc": float(auc(members, others)[0]),
        "auc_ci95": interval(aucs),
        "tpr_at_1pct_fpr": float(tpr_at_fpr(members, others)[0]),
        "tpr_at_1pct_fpr_ci95": interval(tprs),
        "n_training": int(len(members)),
        "n_held_out": int(len(others)),
        "bootstrap": bootstrap,
        "members_mean_score": float(members.mean()),
        "held_out_mean_score": float(others.mean()),
    }


def membership_check(
    gan: GAN | None, config: dict[str, Any] | None, training: torch.Tensor, held_out: torch.Tensor, device: torch.device, batch_size: int = 64, seed: int = 0
) -> dict[str, Any]:
    """The check's numbers, or {"skipped": why} when there is no discriminator to ask."""
    if gan is None:
        return {"skipped": "a folder of images has no discriminator"}
    if "discriminator" not in (config or {}).get("components", ["discriminator"]):
        return {"skipped": "the checkpoint has no discriminator weights (hub models are pushed without it unless --include-discriminator)"}
    if len(training) < 2 or len(held_out) < 2:
        return {"skipped": "needs at least 2 training and 2 held-out images"}
    if len(training) > MAX_MEMBERS:
        chosen = np.sort(np.random.default_rng(seed).choice(len(training), MAX_MEMBERS, replace=False))
        training = training[torch.from_numpy(chosen)]
    members = discriminator_scores(gan, training, device, batch_size)
    others = discriminator_scores(gan, held_out, device, batch_size)
    return membership_statistics(members, others, seed=seed)
