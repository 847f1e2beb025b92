"""The perceptual term: its value by hand on a known network, a frozen feature network that still passes
gradients to what feeds it, VGG layers by name from a local weights file, and the errors a user can meet."""

from __future__ import annotations

import urllib.error
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_cli.errors import UserError
from gan_cli.losses.perceptual import (
    PerceptualLoss,
    VGGFeatures,
    classifier_perceptual,
    vgg_layer_names,
    vgg_perceptual,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def random_vgg_weights(path: Path, arch: str = "vgg16") -> Path:
    """A randomly initialised VGG `features` saved in torchvision's numbering (features.0.weight, ...): the
    stand-in for the ImageNet file, so that no test downloads anything."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["D" if arch == "vgg16" else "E"])
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory) -> Path:
    return random_vgg_weights(tmp_path_factory.mktemp("vgg") / "vgg16-random.pth")


def known_net(scale: float = 3.0) -> nn.Sequential:
    """conv: 1x1 convolution multiplying by `scale` (minus 1), then an in-place ReLU (which must not change
    what was read from conv)."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(scale)
        conv.bias.fill_(-1.0)
    return nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU(inplace=True)))


def test_loss_is_zero_for_identical_images_and_matches_a_hand_computation():
    loss = PerceptualLoss(known_net(3.0), layers=["conv", "relu"], weight=0.5, mean=[0.5], std=[0.5])
    x, y = torch.rand(2, 1, 4, 4) * 2 - 1, torch.rand(2, 1, 4, 4) * 2 - 1
    assert loss(x, x).item() == 0.0
    # in [0, 1]: u = (x + 1) / 2; conv: 3u - 1; relu: max(3u - 1, 0)
    u, v = (x + 1) / 2, (y + 1) / 2
    conv_term = ((3 * u - 1) - (3 * v - 1)).pow(2).mean()
    relu_term = ((3 * u - 1).clamp(min=0) - (3 * v - 1).clamp(min=0)).pow(2).mean()
    assert loss.loss(x, y).item() == pytest.approx(0.5 * (conv_term + relu_term).item() / 2, rel=1e-5)
    # no layers: the network's output, or the first element of what it returns (a FeatureNetwork's features)
    assert PerceptualLoss(known_net(3.0), weight=2.0)(u, v).item() == pytest.approx(2 * relu_term.item(), rel=1e-5)

    class Pair(nn.Module):
        def forward(self, images):
            return images.mean(dim=(1, 2, 3)), None

    means = u.mean((1, 2, 3)) - v.mean((1, 2, 3))
    assert PerceptualLoss(Pair())(u, v).item() == pytest.approx(means.pow(2).mean().item())


def test_feature_network_is_frozen_hidden_from_the_model_and_passes_gradients():
    network = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 4, 3), drop=nn.Dropout(0.5), relu=nn.ReLU()))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    loss = PerceptualLoss(network, layers=["relu"], mean=[0.5], std=[0.5])
    holder = nn.ModuleDict({"G": nn.Conv2d(1, 1, 1), "perceptual": loss}).train()
    assert not network.training  # eval mode (dropout off) even though its holder trains
    assert all(not p.requires_grad for p in network.parameters())
    assert list(holder["perceptual"].parameters()) == []  # no optimizer of the model can reach it
    assert list(holder.state_dict()) == ["G.weight", "G.bias", "perceptual.network_sha256"]  # not saved
    optimizer = torch.optim.SGD(holder.parameters(), lr=1.0)
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    for _ in range(3):
        optimizer.zero_grad()
        loss(x, holder["G"](x)).backward()
        assert holder["G"].weight.grad.abs().sum() > 0  # gradients reach the generator through the frozen net
        assert all(p.grad is None for p in network.parameters())
        optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    holder.to(torch.float64)  # the hidden network follows the module's moves (device, dtype)
    assert network.conv.weight.dtype == torch.float64


def test_a_checkpoint_from_other_feature_weights_is_refused():
    state = PerceptualLoss(known_net(3.0)).state_dict()
    PerceptualLoss(known_net(3.0)).load_state_dict(state)  # the same weights: fine
    with pytest.raises(UserError, match="other weights"):
        PerceptualLoss(known_net(2.0)).load_state_dict(state)


def test_unknown_layer_names_are_listed():
    with pytest.raises(UserError, match=r"relu9_9 not in .*conv, relu"):
        PerceptualLoss(known_net(), layers=["relu9_9"])


def test_vgg_layers_by_name_give_the_right_shapes_from_local_weights(vgg16_file):
    names = vgg_layer_names("vgg16")
    assert len(names) == 31 and names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[names.index("relu4_3")] == "relu4_3" and names[-1] == "pool5" and names.index("relu4_3") == 22
    assert "relu5_4" in vgg_layer_names("vgg19") and len(vgg_layer_names("vgg19")) == 37
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    loss = vgg_perceptual(weights_path=str(vgg16_file), layers=layers, mean=[0.5], std=[0.5])
    saved = torch.load(vgg16_file, weights_only=True)
    assert torch.equal(loss.network.body.conv4_3.weight, saved["features.21.weight"])  # torchvision's numbering
    grey = torch.rand(2, 1, 32, 32) * 2 - 1
    features = loss.features(grey)
    assert [tuple(f.shape) for f in features] == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8), (2, 512, 4, 4)]
    # the early-stopping pass reads what the whole network computes at those layers
    x = loss.network.normalise((grey + 1) / 2)
    assert torch.allclose(features[1], loss.network.body[:names.index("relu2_2") + 1](x))
    # grey is repeated over RGB, and ImageNet's normalisation applied after the data's is undone
    rgb = grey.expand(-1, 3, -1, -1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(x, ((rgb + 1) / 2 - mean) / std)
    assert loss(grey, grey).item() == 0.0 and loss(grey, -grey).item() > 0


def test_missing_or_wrong_vgg_weights_say_where_to_get_them(tmp_path, vgg16_file, monkeypatch):
    with pytest.raises(UserError, match="is not a file.*vgg16-397923af.pth"):
        VGGFeatures("vgg16", weights_path=str(tmp_path / "nowhere.pth"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(UserError, match=r"could not be downloaded from https://download.pytorch.org/models/"
                                        r"vgg19-dcbb9e9d.pth.*model.perceptual.weights_path="):
        VGGFeatures("vgg19")
    with pytest.raises(UserError, match="does not hold vgg19's layers"):
        VGGFeatures("vgg19", weights_path=str(vgg16_file))
    with pytest.raises(UserError, match="arch=vgg11"):
        VGGFeatures("vgg11")


def test_digit_classifier_perceptual_needs_its_checkpoint():
    with pytest.raises(UserError, match="model.perceptual.classifier_ckpt is not set.*gan-train model=classifier"):
        classifier_perceptual(None)
