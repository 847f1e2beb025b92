"""The table benchmarks/throughput.py prints: per case, each side's median images/s with its spread and the ratios
a user compares, then the issue's targets for the device measured on, each met or not."""

from __future__ import annotations

import statistics

from throughput_cases import Case

#: (case key, numerator side, denominator side, target ratio, device) of the targets
TARGETS = [
    ("dcgan", "eager", "plain", 0.97, "cpu"), ("mlp", "eager", "plain", 0.97, "cpu"),
    ("cyclegan", "eager", "plain", 0.97, "cpu"), ("pix2pix", "eager", "plain", 0.97, "cpu"),
    ("vae", "eager", "plain", 0.97, "cpu"), ("text_cgan", "eager", "plain", 0.97, "cpu"),
    ("dcgan", "fast", "eager", 1.2, "cpu"),
    ("dcgan", "fast", "limit", 0.7, "cuda"), ("dcgan256", "fast", "limit", 0.85, "cuda"),
    ("mlp", "fast", "plain", 3.0, "cuda"), ("cyclegan", "fast", "reference", 1.5, "cuda"),
    ("pix2pix", "fast", "reference", 1.5, "cuda"), ("dcgan256", "fast", "fast fp32", 1.3, "cuda"),
    ("cyclegan", "fast", "fast fp32", 1.3, "cuda"),
    ("dcgan", "captured", "limit", 0.7, "cuda"), ("dcgan256", "captured", "limit", 0.85, "cuda"),
    ("mlp", "captured", "plain", 3.0, "cuda"), ("pix2pix", "captured", "reference", 1.5, "cuda"),
    ("cyclegan", "captured", "reference", 1.5, "cuda"),
]
COMPARED = ("plain", "eager", "limit", "reference")  # the ratio columns: a side / each of these


def rate(images_per_s: float) -> str:
    """1 decimal, or 3 below 10 images/s (the translation models on a CPU)."""
    return f"{images_per_s:.1f}" if images_per_s >= 10 else f"{images_per_s:.3f}"


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def report(cases: list[Case], device: str, jobs: dict[str, float]) -> None:
    for case in cases:
        medians = {side: statistics.median(values) for side, values in case.results.items()}
        shown = [c for c in COMPARED if c in medians]
        print(f"{case.name}, batch {case.batch_size}")
        print(f"  {'side':<11}{'images/s':>11}{'spread':>8}" + "".join(f"{'/ ' + c:>12}" for c in shown))
        for side, median in medians.items():
            ratios = "".join(f"{median / medians[c]:>12.3f}" if c != side else f"{'':>12}" for c in shown)
            print(f"  {side:<11}{rate(median):>11}{spread(case.results[side]):>8.1%}{ratios}")
        for side, note in case.notes.items():
            print(f"  {side}: {note}")
        print()
    if jobs:
        print(f"make train's job, command to last checkpoint: eager {jobs['eager']:.1f} s, engine=fast "
              f"{jobs['fast']:.1f} s" + (" (target on a GPU: under 20 s)" if device == "cuda" else ""))
    by_key = {case.key: case for case in cases}
    print(f"targets on {device}:")
    for key, side, over, target, where in TARGETS:
        case = by_key.get(key)
        if where != device or case is None or side not in case.results or over not in case.results:
            continue
        ratio = statistics.median(case.results[side]) / statistics.median(case.results[over])
        noise = max(spread(case.results[side]), spread(case.results[over]))
        verdict = "met" if ratio >= target else "NOT met"
        if abs(ratio - target) < noise * target:
            verdict += " (within the noise)"
        print(f"  {case.name}: {side} / {over} = {ratio:.3f}, target >= {target}: {verdict}")
    print("\nimages/s: medians of the repeats; spread: (max - min) / median of one side's repeats; '/ x': this "
          "side's images/s over side x's.")
