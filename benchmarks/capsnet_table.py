"""The CapsNet paper's Table 1 on mnist_5k: held-out accuracy with 1 and 3 routing iterations, with and
without the reconstruction decoder, next to a plain CNN baseline, all trained the same way.

Data: the mnist_5k digits at the paper's 28 px, split 4,000 train / 1,000 test (data.dataset.test_per_class=100),
training images shifted by up to 2 px (the paper's augmentation); Adam 1e-3, batch 32, one seed (42) per
cell. Accuracy is gan-eval's (the mean over classes of the held-out recall; the 1,000 test digits are
100 per class, so it is also the plain fraction correct). With 1,000 test digits one cell's accuracy has a
standard error of about sqrt(p (1 - p) / 1000), 0.4 points at 98%: differences of that size between cells
are noise, and the paper's differences (0.05 to 0.1 points on 10,000 MNIST test digits after full training)
cannot show here.

The baseline is the CNN of the authors' released code (research/capsules/models/conv_model.py, run with
--model=baseline): two unpadded 5x5 ReLU convolutions of 512 and 256 channels, each followed by 2x2 max
pooling, a fully connected ReLU layer of 1024 and the 10 logits: 7,495,946 parameters at 28 px, close to
CapsNet's 8.2M, and about the same work a batch. (The paper's text describes a bigger baseline, 256-256-128
convolutions without pooling and fully connected 328-192 with dropout, 35.4M parameters: about 10x CapsNet's
work a batch, too slow for this CPU benchmark.) It trains as model=classifier (cross-entropy, Adam 1e-3,
constant, the same shifts).

CapsNet at full size is slow on a CPU: the script first times a few training batches, then prints the time
a run of --epochs will take (125 batches an epoch). Its table has a row per cell: routing iterations,
reconstruction, parameters, held-out accuracy with its standard error, training time, and the paper's MNIST
test error. Measured figures (the table, the time a batch and a run took): benchmarks/RESULTS.md#capsnet.

    OMP_NUM_THREADS=1 python benchmarks/capsnet_table.py [--epochs 2] [--cells r3_recon,baseline] [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import train_run  # noqa: E402  (same folder)
from throughput import compose_train, quiet_frameworks  # noqa: E402

#: the data of every cell: 28 px digits, 4,000 train / 1,000 test
DATA = ["data=mnist_5k", "data.image_size=28", "data.dataset.test_per_class=100", "logger=none"]
#: cell -> (routing iterations, reconstruction, the paper's MNIST test error % (Table 1, mean +- sd of 3 trials))
CAPSNET = {"r1": (1, False, "0.34 +- 0.032"), "r1_recon": (1, True, "0.29 +- 0.011"),
           "r3": (3, False, "0.35 +- 0.036"), "r3_recon": (3, True, "0.25 +- 0.005")}
PAPER_BASELINE_ERROR = "0.39"  # the paper's baseline (35.4M parameters)


class ReferenceBaseline(nn.Module):
    """The CNN baseline of the CapsNet reference code: unpadded 5x5 ReLU convolutions (`widths`), each
    followed by 2x2 max pooling, fully connected ReLU layers (`hidden`), dropout, logits. It has the interface
    of gan_cli.models.classic.classifier_nets.ConvClassifier, so model=classifier trains it."""

    def __init__(self, channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 widths: Sequence[int] = (512, 256), hidden: Sequence[int] = (1024,), dropout: float = 0.0) -> None:
        super().__init__()
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.feature_dim = hidden[-1]
        layers: list[nn.Module] = []
        width, size = channels, image_size
        for out in widths:
            layers += [nn.Conv2d(width, out, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            width, size = out, (size - 4) // 2
        layers.append(nn.Flatten())
        for a, b in zip([width * size * size, *hidden], hidden):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden[-1], num_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def cell_overrides(cell: str, epochs: int) -> list[str]:
    """gan-train's overrides for one cell of the table."""
    common = [*DATA, f"trainer.max_epochs={epochs}"]
    if cell == "baseline":
        return [*common, "model=classifier", "model.lr_decay=none", "model.augment_shift=2",
                "model.network._target_=capsnet_table.ReferenceBaseline", "model.network.widths=[512,256]",
                "model.network.hidden=[1024]", "model.network.dropout=0.0"]
    iterations, reconstruction, _ = CAPSNET[cell]
    return [*common, "model=capsnet", f"model.network.routing_iterations={iterations}",
            f"model.reconstruction={str(reconstruction).lower()}"]


def step_seconds(cell: str, batches: int = 4) -> float:
    """Seconds per training batch (of 32) of a cell, after one warm-up batch."""
    from gan_cli.commands.train import build

    datamodule, model, _ = build(compose_train(cell_overrides(cell, 1), Path("unused")))
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for _ in range(batches + 1):
        batch = next(loader)
        start = time.perf_counter()
        images, labels = batch["image"], batch["label"]
        if cell == "baseline":
            loss = nn.functional.cross_entropy(model(images), labels)
        else:
            _, margin, reconstruction = model.losses(model.unit_range(images), labels)
            loss = margin if reconstruction is None else margin + 0.0005 * reconstruction
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of every cell (125 batches each)")
    parser.add_argument("--cells", default="r1,r1_recon,r3,r3_recon,baseline",
                        help=f"which cells to run, of {', '.join([*CAPSNET, 'baseline'])}")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-capsnet"), help="where the runs go")
    parser.add_argument("--quick", action="store_true", help="10 batches per run: checks the script, not the models")
    args = parser.parse_args()
    cells = args.cells.split(",")
    unknown = [c for c in cells if c not in [*CAPSNET, "baseline"]]
    if unknown:
        parser.error(f"unknown cell {unknown[0]}")
    quiet_frameworks()
    from hydra.utils import instantiate

    from gan_cli.assembly import load_model
    from gan_cli.evaluation import Evaluator

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; runs in {args.out.resolve()}", flush=True)
    for cell in dict.fromkeys(["r3_recon" if c.startswith("r") else c for c in cells]):
        seconds = step_seconds(cell)
        print(f"{cell}: {seconds:.2f} s a training batch of 32 -> about {125 * seconds * args.epochs / 60:.1f} min "
              f"for {args.epochs} epochs of 125 batches", flush=True)

    rows = {}
    for cell in cells:
        ckpt, seconds = train_run(cell, cell_overrides(cell, args.epochs), args.out, args.quick)
        model, config = load_model(ckpt)
        scores = Evaluator(None).evaluate(model, instantiate(config["data"]))
        parameters = sum(p.numel() for p in model.parameters())
        rows[cell] = (scores["accuracy"], seconds, parameters)
        print(f"{cell}: {100 * scores['accuracy']:.1f}% in {seconds / 60:.1f} min", flush=True)

    print(f"\nHeld-out accuracy on 1,000 mnist_5k digits (trained on 4,000, 28 px, {args.epochs} epochs, seed 42), "
          "next to the paper's MNIST (60,000 train, 10,000 test, full training):\n")
    print(f"  {'model':<32}{'routing':>8}{'recon.':>8}{'params':>11}{'accuracy':>10}{'± s.e.':>8}{'time':>8}"
          f"{'paper error %':>16}")
    for cell in [c for c in ["baseline", *CAPSNET] if c in rows]:  # the paper's order
        accuracy, seconds, parameters = rows[cell]
        if cell == "baseline":
            name, routing, recon, paper = "CNN baseline (reference code's)", "-", "-", PAPER_BASELINE_ERROR
        else:
            iterations, reconstruction, paper = CAPSNET[cell]
            name, routing, recon = "CapsNet", str(iterations), "yes" if reconstruction else "no"
        error = 100 * math.sqrt(accuracy * (1 - accuracy) / 1000)
        print(f"  {name:<32}{routing:>8}{recon:>8}{parameters:>11,}{100 * accuracy:>9.1f}%{error:>7.1f}"
              f"{seconds / 60:>6.1f} m{paper:>16}")
    missing = [c for c in [*CAPSNET, "baseline"] if c not in rows]
    if missing:
        print(f"\nNot run: {', '.join(missing)} (python benchmarks/capsnet_table.py --cells {','.join(missing)}).")


if __name__ == "__main__":
    main()
