#!/usr/bin/env python
"""Random kills: gan-train runs killed with SIGKILL at random moments, each resumed from its last.ckpt with the
command a user would type, and compared with an uninterrupted run in every tensor and counter of the final
checkpoint (weights, buffers, optimizer moments, schedules, pools, random generators, the loops' progress, the
loader's position).

    python benchmarks/faults.py                 # 30 kills over seven model families (about 8 minutes on 2 cores)
    python benchmarks/faults.py --kills 6       # fewer
    python benchmarks/faults.py --seed 3        # other kill moments

Every run writes last.ckpt after every batch (callbacks.last_checkpoint.every_n_train_steps), so that many
kills land while a checkpoint is being written; the moment is drawn uniformly over the training time that
follows the first checkpoint (measured on the uninterrupted run), and drawn again (3 times at most) when the
run ends before its kill. Killed during a write, a run leaves a
half-written temporary file, which the resumed run removes. It prints, per kill, where it landed and whether
the resumed run ended exactly like the uninterrupted one, then `kills survived exactly: N/N`.

This is a benchmark, not a test: it always exits 0. Measured figures: benchmarks/RESULTS.md#make-bench-faults.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.resume_helpers import differences, final_state  # noqa: E402  (the comparison the tests make)

BASE = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "trainer.deterministic=true", "seed=11", "logger=none", "callbacks.sample_grid.every_n_batches=0",
        "callbacks.last_checkpoint.every_n_epochs=null"]
FAKE = ["data=fake", "data.dataset.size=160", "data.batch_size=16", "trainer.max_epochs=3"]
#: name -> (overrides, optimizer steps per batch: the checkpoints are written after every batch)
FAMILIES = {
    "dcgan (in memory, 2 workers)": (["model=dcgan", "model.generator.ngf=16", "model.discriminator.ndf=16", *FAKE,
                                      "data.num_workers=2"], 2),
    "cyclegan (folders, 2 workers)": (["model=cyclegan", "model.generator.ngf=8", "model.generator.n_blocks=2",
                                       "model.discriminator.ndf=8", "data=unpaired_folder", "data.crop_size=32",
                                       "data.batch_size=2", "data.num_workers=2", "trainer.max_epochs=3"], 2),
    "text_cgan (captions)": (["model=text_cgan", "data=mnist_5k_captions", "text_encoder=hashing",
                              "model.generator.ngf=8", "model.discriminator.ndf=8", "data.batch_size=16",
                              "+trainer.limit_train_batches=10", "trainer.max_epochs=3"], 2),
    "vae (in memory)": (["model=vae", "model.encoder.hidden=[64]", "model.decoder.hidden=[64]", *FAKE], 1),
    "rbm (in memory)": (["model=rbm", *FAKE, "data.image_size=16", "model.hidden=64", "model.gibbs_steps=5",
                         "model.monitor_size=16"], 1),
    "capsnet (in memory)": (["model=capsnet", "model.network.conv_channels=8", "model.network.primary_capsules=4",
                             "model.network.primary_dim=4", "model.decoder.hidden=[16]", *FAKE, "data.image_size=28",
                             "data.num_classes=10"], 1),
    "classifier (in memory, 2 workers)": (["model=classifier", *FAKE, "data.num_classes=10", "data.num_workers=2"], 1),
}


def image_folders(root: Path) -> Path:
    """20 unpaired 40 px images per domain (the test suite's tiny translation data, larger)."""
    from tests.conftest import write_image_pairs

    return write_image_pairs(root, count=20)["unpaired"]


def command(overrides: list[str], run: Path) -> list[str]:
    return [sys.executable, "-m", "gan_cli", *overrides, f"hydra.run.dir={run}"]


def run_to_end(overrides: list[str], run: Path) -> float:
    """Run gan-train to its end; the seconds from its first checkpoint to its end."""
    proc = subprocess.Popen(command(overrides, run), cwd=run.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    first = wait_for_checkpoint(proc, run)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"gan-train failed:\n{err[-2000:]}")
    return time.monotonic() - first


def wait_for_checkpoint(proc: subprocess.Popen, run: Path) -> float:
    last = run / "checkpoints" / "last.ckpt"
    while proc.poll() is None and not last.exists():
        time.sleep(0.01)
    return time.monotonic()


ENDED = "after the run ended"


def kill_once(overrides: list[str], run: Path, after: float) -> tuple[str, bool]:
    """Start the run, SIGKILL it `after` seconds past its first checkpoint; (where it landed, orphan left)."""
    proc = subprocess.Popen(command(overrides, run), cwd=run.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_for_checkpoint(proc, run)
    time.sleep(after)
    if proc.poll() is not None:
        return ENDED, False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    orphan = any((run / "checkpoints").glob(".*.tmp"))
    return ("during a checkpoint write" if orphan else "between writes"), orphan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="gan-cli-faults-"))
    folders = image_folders(root / "images")
    families = {name: ([*BASE, *overrides, f"callbacks.last_checkpoint.every_n_train_steps={steps}"]
                       + ([f"data.root={folders}"] if "unpaired_folder" in " ".join(overrides) else []))
                for name, (overrides, steps) in FAMILIES.items()}
    print(f"Runs in {root}", flush=True)
    reference, window = {}, {}
    for name, overrides in families.items():
        run = root / f"straight-{len(reference)}"
        window[name] = run_to_end(overrides, run)
        reference[name] = final_state(run)
        print(f"  {name}: uninterrupted, {window[name]:.1f} s of training after the first checkpoint", flush=True)
    survived, during_writes, missed = 0, 0, 0
    names = list(families)
    for kill in range(args.kills):
        name = names[kill % len(names)]
        killed, resumed = root / f"kill{kill:02d}", root / f"kill{kill:02d}-resumed"
        for _ in range(3):  # a run faster than the uninterrupted one may end before its kill: draw again
            where, orphan = kill_once(families[name], killed, rng.uniform(0, 0.95 * window[name]))
            if where != ENDED:
                break
            shutil.rmtree(killed)
        if where == ENDED:
            missed += 1
            print(f"  kill {kill + 1:2d}: {name}, missed: the run ended before each of 3 kills", flush=True)
            continue
        during_writes += orphan
        resume = [*families[name], f"ckpt_path={killed / 'checkpoints' / 'last.ckpt'}"]
        done = subprocess.run(command(resume, resumed), cwd=root, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        cleaned = not any((killed / "checkpoints").glob(".*.tmp"))
        # killed after its last checkpoint was written, the run has nothing left to do: that is the final state
        final = resumed if (resumed / "checkpoints" / "last.ckpt").exists() else killed
        exact = done.returncode == 0 and not differences(reference[name], final_state(final))
        survived += exact and cleaned
        print(f"  kill {kill + 1:2d}: {name}, {where}; resumed: "
              f"{'exact' if exact else 'DIFFERENT' if done.returncode == 0 else 'FAILED ' + done.stderr[-300:]}"
              f"{'' if cleaned else ', orphan left'}", flush=True)
    landed = args.kills - missed
    print(f"\nkills during a checkpoint write: {during_writes}/{landed}")
    if missed:
        print(f"kills that missed (the run ended first, 3 draws each): {missed}")
    print(f"kills survived exactly: {survived}/{landed}")


if __name__ == "__main__":
    main()
