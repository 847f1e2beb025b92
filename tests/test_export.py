"""gan-export writes a folder to share (safetensors without the discriminators, the config, a sample grid, a model
card with YAML metadata and the evaluation record); gan-sample, gan-translate and gan-eval take it as ckpt_path=DIR
and as hf://owner/name from a local Hugging Face cache; offline, a missing hf:// repository is named with what to
download and where."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from gan_cli.assembly import load_model
from gan_cli.commands.evaluate import evaluate
from gan_cli.commands.export import export
from gan_cli.commands.sample import sample
from gan_cli.commands.train import train
from gan_cli.commands.translate import translate
from tests.conftest import POOLED, QUICK, SMALL, compose_train, translation_quick
from tests.helpers import refusal

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, image_pairs) -> dict[str, Path]:
    """A tiny cgan evaluated during training (metrics.json), and a tiny CycleGAN."""
    paths = {}
    for name, overrides in {"cgan": [*QUICK, *SMALL["cgan"], "model=cgan", *POOLED, "logger=none"],
                            "cyclegan": [*translation_quick("cyclegan", image_pairs), "logger=none"]}.items():
        run = tmp_path_factory.mktemp(name)
        train(compose_train(run, overrides))
        paths[name] = run / "checkpoints" / "last.ckpt"
    return paths


def exported(make_cfg, ckpt: Path, folder: Path, *settings: str) -> Path:
    return export(make_cfg(f"ckpt_path={ckpt}", f"output={folder}", *settings, config_name="export"))


def drawn(make_cfg, ckpt, output: Path) -> torch.Tensor:
    folder = sample(make_cfg(f"ckpt_path={ckpt}", "num_samples=4", "label=3", f"output={output}/",
                             config_name="sample"))
    from PIL import Image

    return torch.stack([torch.tensor(list(Image.open(p).getdata())) for p in sorted(folder.iterdir())])


def test_the_export_holds_the_generator_the_config_a_grid_and_a_card(make_cfg, tmp_path, runs):
    folder = exported(make_cfg, runs["cgan"], tmp_path / "shared", "repo_id=someone/digits")
    weights = load_file(folder / "model.safetensors")
    assert any(k.startswith("generator.") for k in weights) and not any(k.startswith("discriminator.") for k in weights)
    model, _ = load_model(runs["cgan"])
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items() if k.startswith("generator."))
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["model"]["_target_"] == "gan_cli.models.gans.gan.GAN"
    assert config["dropped"] == ["discriminator."]
    card = (folder / "README.md").read_text()
    _, front, body = card.split("---", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "gan-cli" and meta["pipeline_tag"] == "unconditional-image-generation"
    evaluation = meta["gan_cli"]["evaluation"]
    assert "fid" in evaluation["scores"] and "feature_network" in evaluation["protocol"]
    assert "![samples](samples.png)" in body and "gan-sample ckpt_path=hf://someone/digits" in body
    assert (folder / "samples.png").is_file()


def test_the_exported_folder_samples_as_the_checkpoint_does(make_cfg, tmp_path, runs):
    folder = exported(make_cfg, runs["cgan"], tmp_path / "shared")
    assert torch.equal(drawn(make_cfg, folder, tmp_path / "a"), drawn(make_cfg, runs["cgan"], tmp_path / "b"))
    record, output = evaluate(make_cfg(f"ckpt_path={folder}", *POOLED, "metrics.num_samples=16", config_name="eval"))
    assert "fid" in record["scores"] and output == tmp_path / "shared.eval.json"


def test_an_exported_translator_translates_as_the_checkpoint_does(make_cfg, tmp_path, runs, image_pairs):
    folder = exported(make_cfg, runs["cyclegan"], tmp_path / "shared")
    assert not any(k.startswith(("D_A.", "D_B.")) for k in load_file(folder / "model.safetensors"))
    assert "image-to-image" in (folder / "README.md").read_text()
    images = image_pairs["unpaired"] / "testA"
    for source, out in ((folder, "from_export"), (runs["cyclegan"], "from_ckpt")):
        translate(make_cfg(f"ckpt_path={source}", f"input={images}", f"output={tmp_path / out}",
                           config_name="translate"))
    for a in sorted((tmp_path / "from_export").iterdir()):
        assert a.read_bytes() == (tmp_path / "from_ckpt" / a.name).read_bytes()


def hub_cache(root: Path, repo: str, folder: Path) -> Path:
    """The layout huggingface_hub keeps a downloaded repository in: refs/main names a snapshot folder."""
    commit = "0" * 40
    cached = root / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, cached / "snapshots" / commit)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    return root


def test_hf_paths_load_from_the_local_hub_cache_and_a_missing_one_says_what_to_download(
        make_cfg, tmp_path, runs, monkeypatch):
    import huggingface_hub.constants as hub

    folder = exported(make_cfg, runs["cgan"], tmp_path / "shared")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(hub_cache(tmp_path / "hub", "someone/digits", folder)))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    assert torch.equal(drawn(make_cfg, "hf://someone/digits", tmp_path / "a"), drawn(make_cfg, folder, tmp_path / "b"))
    error = refusal(lambda: drawn(make_cfg, "hf://someone/other", tmp_path / "c"))
    assert "hf download someone/other" in str(error) and str(tmp_path / "hub") in str(error)


def test_bad_exports_are_named(make_cfg, tmp_path, runs):
    folder = exported(make_cfg, runs["cgan"], tmp_path / "shared")
    assert "an exported folder already" in str(refusal(lambda: exported(make_cfg, folder, tmp_path / "again")))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert "other files in it" in str(refusal(lambda: exported(make_cfg, runs["cgan"], tmp_path / "busy")))
    (folder / "model.safetensors").write_bytes(b"not weights")
    assert "not a complete gan-export folder" in str(refusal(lambda: drawn(make_cfg, folder, tmp_path / "x")))


@pytest.mark.slow
def test_gan_export_is_a_command(tmp_path, runs):
    from tests.conftest import run_cli

    result = run_cli([f"ckpt_path={runs['cgan']}", f"output={tmp_path / 'shared'}"], tmp_path, module="gan-export")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Exported to" in result.stdout and (tmp_path / "shared" / "model.safetensors").is_file()
