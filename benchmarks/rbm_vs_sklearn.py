"""model=rbm against scikit-learn's BernoulliRBM on the same digits: held-out pseudo-log-likelihood and training
time (issue 7's targets: at least as good a PLL, at least 2x faster).

Both learn from the 4,500 mnist_5k training digits at 28x28 (784 visible units, intensities in [0, 1] as
probabilities), with the same hidden units, epochs, batch size and learning rate, in float32 on one thread.
scikit-learn trains by persistent CD with one Gibbs step, v~ a binary sample, no momentum or weight decay and
zero initial biases, and does not reshuffle between epochs (it is given the digits in one random order:
mnist_5k's are sorted by class); ours runs that same algorithm (`persistent=true reconstruction=sample`, momentum and
weight decay 0, `init_visible_bias=false`), then CD-1 with the same settings, then our default config
(CD-1 with Hinton's momentum, weight decay and visible-bias start).

Scores: the exact pseudo-log-likelihood (sum over all 784 pixels of log p(v_i | v_-i), gan_cli.models.classic.rbm_nets) of
the 500 held-out digits binarised at 0.5, computed by the same function for every model (scikit-learn's
components_ and intercepts loaded into our RBMNet), and scikit-learn's own score_samples (its one-random-bit
estimate of the same quantity) for reference.

Times: ours through gan-train's runner (gan_cli.commands.train.train: Lightning, DataLoader, no validation, logging,
checkpoints or sample grids: the time from the first to the end of the last training batch), and through
the model's own update on the same tensors in a plain loop (what the Lightning machinery costs). The runner
loads batches of --loaded images and splits each into CD updates of the compared batch size
(model.cd_batch_size), so Lightning's per-step cost is paid once per loaded batch; the same run with one
update per loaded batch is shown too. Every row runs once per seed: the final PLL of PCD varies by several
nats from run to run, so the rows give its mean and standard deviation and the median speed ratio.

    OMP_NUM_THREADS=1 python benchmarks/rbm_vs_sklearn.py [--epochs 10] [--hidden 256] [--batch-sizes 10 100]
        [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose_train, quiet_frameworks  # noqa: E402  (same folder)

#: our model=rbm settings for scikit-learn's algorithm
AS_SKLEARN = ["model.persistent=true", "model.reconstruction=sample", "model.initial_momentum=0",
              "model.final_momentum=0", "model.weight_decay=0", "model.init_visible_bias=false"]
#: the lecture's CD-1 with the same plain SGD
PLAIN_CD1 = ["model.reconstruction=sample", "model.initial_momentum=0", "model.final_momentum=0",
             "model.weight_decay=0", "model.init_visible_bias=false"]


class Clock:
    """CPU seconds of this process (everything runs on one thread, so this is the wall time of an idle
    machine, and other jobs on a shared one do not count) and wall seconds."""

    def start(self) -> None:
        self.began = (time.process_time(), time.perf_counter())

    def stop(self) -> dict[str, float]:
        cpu, wall = self.began
        return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


class TrainingClock(pl.Callback, Clock):
    """From the start of the first training batch to the end of the last."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not hasattr(self, "began"):
            self.start()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = self.stop()


def digits(image_size: int = 28):
    """mnist_5k's training intensities (N, 784) and held-out digits binarised at 0.5, and a VisibleCoding."""
    from hydra.utils import instantiate

    from gan_cli.models.classic.rbm_shared import VisibleCoding, dataset_images

    datamodule = instantiate(compose_train(["data=mnist_5k", f"data.image_size={image_size}"], Path("unused")).data)
    coding = VisibleCoding(1, image_size, datamodule.mean, datamodule.std)
    train = coding.unit(dataset_images(datamodule.build("train")))
    test = (coding.unit(dataset_images(datamodule.build("test"))) > 0.5).float()
    return train, test


def held_out_pll(net, test: torch.Tensor) -> float:
    return float(net.pseudo_log_likelihood(test).mean())


def run_sklearn(train: torch.Tensor, test: torch.Tensor, args, batch_size: int, seed: int) -> dict:
    from sklearn.neural_network import BernoulliRBM

    from gan_cli.models.classic.rbm_nets import RBMNet

    sk = BernoulliRBM(n_components=args.hidden, learning_rate=args.lr, batch_size=batch_size, n_iter=args.epochs,
                      random_state=seed)
    # fit() takes the same fixed batches in the given order every epoch, and mnist_5k's digits are sorted by
    # class: give it one random order (ours reshuffles every epoch, as its DataLoader does)
    x = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))].numpy().astype(np.float32)
    clock = Clock()
    clock.start()
    sk.fit(x)
    seconds = clock.stop()
    assert sk.components_.dtype == np.float32  # scikit-learn kept float32
    net = RBMNet(x.shape[1], args.hidden)
    with torch.no_grad():
        net.W.copy_(torch.from_numpy(sk.components_.T.copy()))
        net.b.copy_(torch.from_numpy(sk.intercept_visible_))
        net.c.copy_(torch.from_numpy(sk.intercept_hidden_))
    own = float(sk.score_samples(test.numpy()).mean())
    return {"seconds": seconds, "pll": held_out_pll(net, test), "sklearn_score": own}


def run_ours(extra: list[str], test: torch.Tensor, args, batch_size: int, seed: int, out: Path,
             loaded: int | None = None) -> dict:
    """gan-train model=rbm data=mnist_5k data.image_size=28 with `extra`, timed by TrainingClock: CD updates of
    `batch_size` images, from loaded batches of `loaded` images (default: one update per loaded batch)."""
    from gan_cli.commands.train import build

    cfg = compose_train(["model=rbm", "data=mnist_5k", "data.image_size=28", f"data.batch_size={loaded or batch_size}",
                         f"model.cd_batch_size={batch_size}",
                         f"model.hidden={args.hidden}", f"model.lr={args.lr}", f"trainer.max_epochs={args.epochs}",
                         "trainer=cpu", "logger=none", "callbacks=none", "trainer.limit_val_batches=0",
                         "trainer.enable_checkpointing=false", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false", f"seed={seed}", *extra], out)
    datamodule, model, trainer = build(cfg)
    clock = TrainingClock()
    trainer.callbacks.append(clock)
    trainer.fit(model, datamodule=datamodule)
    return {"seconds": clock.seconds, "pll": held_out_pll(model.rbm, test)}


def run_plain(train: torch.Tensor, test: torch.Tensor, args, batch_size: int, seed: int) -> dict:
    """scikit-learn's algorithm (PCD-1, v~ sampled, plain SGD) with our RBMNet in a bare loop."""
    from gan_cli.models.classic.rbm_nets import RBMNet, bernoulli
    from gan_cli.models.classic.rbm_shared import momentum_optimizer

    torch.manual_seed(seed)
    net = RBMNet(train.shape[1], args.hidden)
    optimizer = momentum_optimizer(net, args.lr, 0.0, 0.0)
    hidden = None  # the persistent chains' hidden states
    clock = Clock()
    clock.start()
    for _ in range(args.epochs):
        for index in torch.randperm(len(train)).split(batch_size):
            v = train[index]
            if hidden is None:
                hidden = bernoulli(net.hidden_probs(v))
            both, _, probs, hidden = net.negative_phase(v, 1, "sample", hidden)
            net.sgd_step(optimizer, both, probs)
    return {"seconds": clock.stop(), "pll": held_out_pll(net, test)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--loaded", type=int, default=900,
                        help="images per loaded batch (data.batch_size), split into CD updates of each batch size")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="one run of every row per seed (PCD's final PLL varies by several nats between runs)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench-rbm"))
    args = parser.parse_args(argv)
    quiet_frameworks()
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import sklearn

    train, test = digits()
    print(f"mnist_5k at 28x28: {len(train)} training digits (intensities), {len(test)} held-out digits binarised at "
          f"0.5; {args.hidden} hidden units, {args.epochs} epochs, learning rate {args.lr}, float32, 1 thread "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, torch {torch.get_num_threads()}, "
          f"scikit-learn {sklearn.__version__}, torch {torch.__version__})")
    print("PLL: exact held-out pseudo-log-likelihood per digit, in nats (higher is better); time: training only, CPU "
          "seconds of this one-thread process (the speed ratio: scikit-learn's CPU seconds over ours, seed by seed)")
    for batch_size in args.batch_sizes:
        print(f"\nbatch size B={batch_size} ({len(train) // batch_size} updates an epoch; ours: loaded batches of "
              f"{args.loaded} split into updates of {batch_size}, model.cd_batch_size={batch_size}, unless said); "
              f"seeds {' '.join(map(str, args.seeds))}")
        rows: dict[str, list[dict]] = {}
        for seed in args.seeds:
            sk = run_sklearn(train, test, args, batch_size, seed)
            for name, result in {
                "scikit-learn BernoulliRBM.fit (PCD-1)": sk,
                "ours, gan-train runner, PCD-1 as scikit-learn":
                    run_ours(AS_SKLEARN, test, args, batch_size, seed, args.out / f"pcd_{batch_size}", args.loaded),
                "  same, one update per loaded batch (data.batch_size=B)":
                    run_ours(AS_SKLEARN, test, args, batch_size, seed, args.out / f"pcd1_{batch_size}"),
                "ours, plain loop over the model's update, PCD-1": run_plain(train, test, args, batch_size, seed),
                "ours, gan-train runner, CD-1 (same plain SGD)":
                    run_ours(PLAIN_CD1, test, args, batch_size, seed, args.out / f"cd1_{batch_size}", args.loaded),
                "ours, gan-train runner, default config (CD-1, momentum, decay)":
                    run_ours([], test, args, batch_size, seed, args.out / f"default_{batch_size}", args.loaded),
            }.items():
                result["speed"] = sk["seconds"]["cpu"] / result["seconds"]["cpu"]
                rows.setdefault(name, []).append(result)
        print(f"  {'model':<62} {'PLL mean (sd)':>14} {'per seed':>{8 * len(args.seeds)}} {'CPU s':>7} "
              f"{'speed vs sklearn: median (min-max)':>35}")
        for name, results in rows.items():
            plls = [r["pll"] for r in results]
            speeds = sorted(r["speed"] for r in results)
            sd = statistics.stdev(plls) if len(plls) > 1 else 0.0
            speed = "" if name.startswith("scikit") else \
                f"{statistics.median(speeds):.2f}x ({speeds[0]:.2f}-{speeds[-1]:.2f})"
            cpu = statistics.median(r["seconds"]["cpu"] for r in results)
            print(f"  {name:<62} {statistics.fmean(plls):8.2f} ({sd:.1f}) "
                  f"{''.join(f'{p:8.1f}' for p in plls)} {cpu:7.2f} {speed:>35}", flush=True)
        own = statistics.fmean(r["sklearn_score"] for r in rows["scikit-learn BernoulliRBM.fit (PCD-1)"])
        print(f"  (scikit-learn's own score_samples of its models, one random bit per digit: mean {own:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
