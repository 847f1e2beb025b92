"""Exact resume everywhere: for a model of every family, in-memory data, image folders and captions, with 0, 2
and 3 DataLoader workers, with the fast engine (bf16, channels-last, compiled networks) and with checkpoints at the end of each epoch or every few steps, a run killed after a
random batch (seeded: the test repeats) and resumed from its last.ckpt ends with a checkpoint equal to an
uninterrupted run's in every tensor and counter (weights, buffers, optimizer moments, schedules, pools, random
generators, the loops' progress, the loader's position). Real SIGKILLs: tests/test_resume.py, make bench-faults."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import SMALL
from tests.resume_helpers import kill_and_resume

BASE = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "trainer.deterministic=true", "seed=5", "logger=none", "callbacks.sample_grid.every_n_batches=0"]
#: checkpoints every 3 optimizer steps (in the middle of epochs) instead of at each epoch's end
MID = ["callbacks.last_checkpoint.every_n_train_steps=3", "callbacks.last_checkpoint.every_n_epochs=null"]
#: 3 batches an epoch of 16 synthetic images, 3 epochs
FAKE = ["data=fake", "data.dataset.size=48", "data.batch_size=16", "trainer.max_epochs=3"]


def folders(layout: str, pairs: dict) -> list[str]:
    """6 images of the image_pairs fixture, 2 a batch: 3 batches an epoch, 3 epochs, 2 workers."""
    return [f"data={layout}_folder", f"data.root={pairs[layout]}", "data.crop_size=32", "data.batch_size=2",
            "data.num_workers=2", "trainer.max_epochs=3"]


#: (cell, its overrides without the data, batches in all, or the data's overrides from image_pairs)
CELLS = {
    "dcgan-memory-0workers-epoch": ([*SMALL["dcgan"], *FAKE], 9),
    "dcgan-memory-2workers-mid": ([*SMALL["dcgan"], *FAKE, "data.num_workers=2", *MID], 9),
    "dcgan-engine_fast-mid": ([*SMALL["dcgan"], *FAKE, "engine=fast", *MID], 9),  # bf16 where the CPU has it
    "dcgan-compiled-epoch": ([*SMALL["dcgan"], *FAKE, "engine=fast", "engine.compile=true"], 9),
    "cyclegan-folders-2workers-mid": (["model=cyclegan", *SMALL["cyclegan"], *MID], "unpaired"),
    "pix2pix-folders-2workers-epoch": (["model=pix2pix", *SMALL["pix2pix"]], "paired"),
    "text_cgan-captions-mid": (["model=text_cgan", "data=mnist_5k_captions", "text_encoder=hashing",
                                "model.generator.ngf=4", "model.discriminator.ndf=4", "model.generator.code_dim=8",
                                "model.discriminator.code_dim=8", "model.generator.latent_dim=8", "data.batch_size=8",
                                "+trainer.limit_train_batches=4", "trainer.max_epochs=2", *MID], 8),
    "vae-memory-2workers-mid": (["model=vae", "model.encoder.hidden=[16]", "model.decoder.hidden=[16]",
                                 "model.code_dim=4", *FAKE, "data.num_workers=2", *MID], 9),
    "rbm-memory-mid": (["model=rbm", *FAKE, "data.image_size=8", "model.hidden=16", "model.gibbs_steps=5",
                        "model.monitor_size=16", *MID], 9),
    "capsnet-memory-epoch": (["model=capsnet", "model.network.conv_channels=8", "model.network.primary_capsules=4",
                              "model.network.primary_dim=4", "model.decoder.hidden=[16]", *FAKE,
                              "data.image_size=28", "data.num_classes=10"], 9),
    "classifier-memory-3workers-mid": (["model=classifier", *FAKE, "data.num_classes=10", "data.num_workers=3",
                                        *MID], 9),
}


@pytest.mark.slow
@pytest.mark.parametrize("cell", list(CELLS))
def test_a_killed_run_resumes_exactly(tmp_path, image_pairs, cell, one_thread):
    overrides, batches = CELLS[cell]
    if isinstance(batches, str):  # image folders
        overrides, batches = [*overrides, *folders(batches, image_pairs)], 9
    at, different, compared = kill_and_resume(tmp_path, [*BASE, *overrides], batches, seed=sum(map(ord, cell)))
    assert compared > 50
    assert not different, f"killed after batch {at}: {len(different)} of {compared} differ, e.g. {different[:4]}"


def test_the_comparison_sees_a_single_changed_number(tmp_path):
    """The matrix's comparison can fail: one element of one moment, or one counter, is enough."""
    from tests.resume_helpers import differences, leaves

    state = {"optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}}], "loops": {"batches": 4}}
    changed = {"optimizer_states": [{"state": {0: {"exp_avg": torch.tensor([0.0, 1e-12, 0.0])}}}], "loops": {"batches": 5}}
    assert differences(leaves(state), leaves(changed)) == [".loops.batches", ".optimizer_states[0].state.0.exp_avg"]
