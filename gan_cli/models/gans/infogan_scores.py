"""How well InfoGAN's first categorical code c1 names the data's classes (InfoGAN.evaluation_scores): counts of
code values against classes, over samples or over real images, and the best one-to-one matching of the two."""

from __future__ import annotations

import torch
from torch import Tensor

from gan_cli.metrics.ranks import rank_and_world, reference_batches, share, summed_over_ranks
from gan_cli.models.adversarial import AdversarialModule


def best_matching(counts: Tensor) -> tuple[float, dict[int, int]]:
    """The one-to-one matching of code values (rows) to classes (columns) that agrees with the most samples.

    `counts[v, k]` is how many samples drawn with code value v were classified as class k. Returns the
    fraction of samples the best matching explains (the accuracy of c1 as a classifier) and the matching
    {code value: class} (Hungarian algorithm; rectangular counts match min(rows, columns) pairs).
    """
    from scipy.optimize import linear_sum_assignment

    counts = counts.detach().double().cpu()
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    total = float(counts.sum())
    matched = float(counts[torch.as_tensor(rows), torch.as_tensor(cols)].sum())
    return (matched / total if total else 0.0), {int(r): int(c) for r, c in zip(rows, cols)}


def sampled_code_counts(model: AdversarialModule, evaluator, datamodule) -> Tensor:
    """For an InfoGAN `model`, counts[v, k]: of the samples drawn with c1 = v, how many the classifier puts in class k."""
    rank, world = rank_and_world()
    values = model.categorical_codes[0]
    counts: Tensor | None = None
    for value in range(values):
        todo = share(evaluator.samples_per_label, rank, world)
        while todo > 0:
            n = min(evaluator.batch_size, todo)
            todo -= n
            images = datamodule.denormalize(model.sample(n, torch.full((n,), value, device=model.device)))
            _, logits = evaluator.classifier(images)
            if counts is None:
                counts = torch.zeros(values, logits.size(1), dtype=torch.long, device=model.device)
            counts[value] += torch.bincount(logits.argmax(1), minlength=logits.size(1)).to(counts.device)
    if counts is None:
        counts = torch.zeros(values, values, dtype=torch.long, device=model.device)
    return summed_over_ranks(counts)


def real_code_counts(model: AdversarialModule, evaluator, datamodule, classes: int) -> Tensor:
    """For an InfoGAN `model`, counts[v, k]: of the reference split's images of class k, how many Q gives c1 = v (D in eval mode;
    images labelled -1 are skipped)."""
    values = model.categorical_codes[0]
    counts = torch.zeros(values * classes, dtype=torch.long, device=model.device)
    training = model.discriminator.training
    model.discriminator.eval()
    try:
        for batch in reference_batches(datamodule, evaluator.reference_split, evaluator.batch_size):
            labels = torch.as_tensor(batch["label"]).to(model.device)
            labelled = labels >= 0
            if labelled.any():
                code = model.discriminator.q(batch["image"].to(model.device)[labelled])[:, :values].argmax(1)
                counts += torch.bincount(code * classes + labels[labelled], minlength=values * classes)
    finally:
        model.discriminator.train(training)
    return summed_over_ranks(counts.view(values, classes))
