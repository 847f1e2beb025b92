"""The networks: DCGAN faithful to Radford et al. 2015 / pytorch/examples, the MLPs of Goodfellow et al.
2014, and their class-conditional versions (Mirza & Osindero 2014)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_cli.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gan_cli.nets.layers import Maxout, dcgan_init_, one_hot

POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool1d, nn.AvgPool1d)


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------------------------
# DCGAN


@pytest.mark.parametrize("channels,expected", [(3, 3_576_704), (1, 3_574_656)])
def test_dcgan_generator_parameter_count_matches_pytorch_examples(channels, expected):
    assert n_params(DCGANGenerator(latent_dim=100, channels=channels, image_size=64, ngf=64)) == expected


@pytest.mark.parametrize("channels,expected", [(3, 2_765_568), (1, 2_763_520)])
def test_dcgan_discriminator_parameter_count_matches_pytorch_examples(channels, expected):
    assert n_params(DCGANDiscriminator(channels=channels, image_size=64, ndf=64)) == expected


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_and_ranges(image_size, channels):
    torch.manual_seed(0)
    gen = DCGANGenerator(latent_dim=16, channels=channels, image_size=image_size, ngf=8)
    disc = DCGANDiscriminator(channels=channels, image_size=image_size, ndf=8)
    z = torch.randn(5, 16)
    images = gen(z)
    assert images.shape == (5, channels, image_size, image_size)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0  # not a constant image
    logits = disc(images)
    assert logits.shape == (5,)
    # an image batch in [-1, 1] (like the data) as well; logits are unbounded raw scores
    logits = disc(torch.rand(3, channels, image_size, image_size) * 2 - 1)
    assert logits.shape == (3,)
    assert torch.isfinite(logits).all()


def test_dcgan_generator_accepts_4d_noise():
    torch.manual_seed(0)
    gen = DCGANGenerator(latent_dim=16, channels=1, image_size=32, ngf=8).eval()
    z = torch.randn(2, 16)
    assert torch.allclose(gen(z), gen(z.view(2, 16, 1, 1)))


@pytest.mark.parametrize("image_size", [16, 128])
def test_dcgan_other_power_of_two_sizes(image_size):
    gen = DCGANGenerator(latent_dim=8, channels=3, image_size=image_size, ngf=4)
    disc = DCGANDiscriminator(channels=3, image_size=image_size, ndf=4)
    images = gen(torch.randn(2, 8))
    assert images.shape == (2, 3, image_size, image_size)
    assert disc(images).shape == (2,)


def test_dcgan_has_no_pooling_and_no_linear_layers():
    for net in (DCGANGenerator(image_size=64, ngf=8), DCGANDiscriminator(image_size=64, ndf=8),
                DCGANGenerator(image_size=32, ngf=8, num_classes=10),
                DCGANDiscriminator(image_size=32, ndf=8, num_classes=10)):
        kinds = [type(m) for m in net.modules()]
        assert not any(issubclass(k, POOLING) for k in kinds), net
        assert nn.Linear not in kinds, net
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert convs and all(c.bias is None for c in convs)  # BatchNorm follows: no biases, as in the paper


def test_dcgan_generator_layers():
    gen = DCGANGenerator(latent_dim=100, channels=3, image_size=64, ngf=64)
    layers = list(gen.net)
    assert isinstance(layers[-1], nn.Tanh)
    assert isinstance(layers[-2], nn.ConvTranspose2d)  # no BatchNorm on the output
    assert layers[-2].out_channels == 3
    assert not any(isinstance(m, nn.LeakyReLU) for m in gen.modules())
    # every hidden conv: ConvTranspose -> BatchNorm -> ReLU
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == 5  # 1 -> 4 -> 8 -> 16 -> 32 -> 64
    for i in convs[:-1]:
        assert isinstance(layers[i + 1], nn.BatchNorm2d)
        assert isinstance(layers[i + 2], nn.ReLU)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == 4
    assert [layers[i].out_channels for i in convs] == [512, 256, 128, 64, 3]


def test_dcgan_discriminator_layers():
    disc = DCGANDiscriminator(channels=3, image_size=64, ndf=64)
    features = list(disc.features)
    assert isinstance(features[0], nn.Conv2d)
    assert isinstance(features[1], nn.LeakyReLU)  # no BatchNorm on the input layer
    relus = [m for m in disc.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(relus) == 4 and all(m.negative_slope == 0.2 for m in relus)
    assert not any(type(m) is nn.ReLU for m in disc.modules())
    assert not any(isinstance(m, (nn.Sigmoid, nn.Tanh)) for m in disc.modules())  # the output is a logit
    convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    for i in convs[1:]:
        assert isinstance(features[i + 1], nn.BatchNorm2d)
        assert isinstance(features[i + 2], nn.LeakyReLU)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in disc.modules()) == 3
    assert [features[i].out_channels for i in convs] == [64, 128, 256, 512]
    assert isinstance(disc.head, nn.Conv2d) and disc.head.out_channels == 1


def test_dcgan_initialisation():
    torch.manual_seed(0)
    for net in (DCGANGenerator(image_size=64), DCGANDiscriminator(image_size=64)):
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert convs
        for conv in convs:
            assert conv.weight.std().item() == pytest.approx(0.02, rel=0.1)
            assert abs(conv.weight.mean().item()) < 0.005
        norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms
        for bn in norms:
            assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
            assert 0 < bn.weight.std().item() < 0.04
            assert torch.count_nonzero(bn.bias) == 0


def test_dcgan_init_is_not_pytorch_default():
    # PyTorch's default init of a 512->256 4x4 transposed conv has std ~0.0072, and BatchNorm weights are all 1
    conv = nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False)
    bn = nn.BatchNorm2d(256)
    assert conv.weight.std().item() < 0.015 and torch.all(bn.weight == 1)
    dcgan_init_(nn.Sequential(conv, bn))
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert not torch.all(bn.weight == 1)


@pytest.mark.parametrize("image_size", [0, 8, 12, 24, 48, 100, -64])
@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_dcgan_rejects_bad_image_sizes(cls, image_size):
    with pytest.raises(ValueError, match=r"data\.image_size") as info:
        cls(image_size=image_size)
    assert str(image_size) in str(info.value)


# --------------------------------------------------------------------------------------------------------
# class-conditional nets

NUM_CLASSES = 10


def conditional_nets():
    torch.manual_seed(0)
    return {
        "mlp": (MLPGenerator(latent_dim=8, channels=1, image_size=8, hidden=(16,), num_classes=NUM_CLASSES),
                MLPDiscriminator(channels=1, image_size=8, hidden=(12,), pieces=3, num_classes=NUM_CLASSES)),
        "dcgan": (DCGANGenerator(latent_dim=8, channels=1, image_size=16, ngf=4, num_classes=NUM_CLASSES),
                  DCGANDiscriminator(channels=1, image_size=16, ndf=4, num_classes=NUM_CLASSES)),
    }


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_conditional_nets_need_labels(kind):
    gen, disc = conditional_nets()[kind]
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match="labels"):
        gen(z)
    labels = torch.arange(4)
    images = gen(z, labels)
    with pytest.raises(ValueError, match="labels"):
        disc(images)
    assert disc(images, labels).shape == (4,)


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_conditional_nets_depend_on_the_label(kind):
    gen, disc = (net.eval() for net in conditional_nets()[kind])  # eval: no dropout, fixed BatchNorm stats
    torch.manual_seed(1)
    z = torch.randn(1, 8).expand(NUM_CLASSES, 8)  # the same z for every class
    labels = torch.arange(NUM_CLASSES)
    with torch.no_grad():
        images = gen(z, labels)
        assert torch.allclose(gen(z, labels), images)  # deterministic
        for i in range(1, NUM_CLASSES):
            assert not torch.allclose(images[0], images[i]), f"class 0 and {i} give the same image"
        same_image = images[:1].expand(NUM_CLASSES, *images.shape[1:])
        scores = disc(same_image, labels)
    assert scores.shape == (NUM_CLASSES,)
    assert scores.unique().numel() == NUM_CLASSES  # the same image scores differently under every label


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_one_hot_labels_work_like_integer_labels(kind):
    gen, disc = (net.eval() for net in conditional_nets()[kind])
    torch.manual_seed(2)
    z = torch.randn(6, 8)
    labels = torch.tensor([0, 3, 9, 3, 5, 1])
    codes = nn.functional.one_hot(labels, NUM_CLASSES).float()
    with torch.no_grad():
        images = gen(z, labels)
        assert torch.allclose(gen(z, codes), images, atol=1e-6)
        assert torch.allclose(disc(images, codes), disc(images, labels), atol=1e-6)


def test_one_hot_helper():
    assert one_hot(None, 10) is None
    assert one_hot(torch.tensor([1, 2]), 0) is None
    codes = one_hot(torch.tensor([2, 0]), 3)
    assert codes.dtype == torch.float32
    assert torch.equal(codes, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    soft = torch.tensor([[0.2, 0.8, 0.0]])
    assert torch.equal(one_hot(soft, 3), soft)


def test_unconditional_nets_ignore_missing_labels():
    gen = MLPGenerator(latent_dim=8, channels=1, image_size=8, hidden=(16,))
    disc = MLPDiscriminator(channels=1, image_size=8, hidden=(12,), pieces=2)
    assert disc(gen(torch.randn(3, 8))).shape == (3,)


# --------------------------------------------------------------------------------------------------------
# MLPs of Goodfellow et al. 2014


def test_mlp_generator_shapes_and_range():
    torch.manual_seed(0)
    gen = MLPGenerator(latent_dim=100, channels=1, image_size=28, hidden=(32, 32))
    images = gen(torch.randn(4, 100) * 50)  # large inputs: the Tanh output still bounds the images
    assert images.shape == (4, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert images.abs().max() > 0.5
    assert isinstance(gen.net[-1], nn.Tanh)
    assert sum(isinstance(m, nn.ReLU) for m in gen.modules()) == 2
    rgb = MLPGenerator(latent_dim=4, channels=3, image_size=8, hidden=(16,))
    assert rgb(torch.randn(2, 4)).shape == (2, 3, 8, 8)


def test_mlp_discriminator_uses_maxout_and_dropout():
    disc = MLPDiscriminator()  # the paper's MNIST D: 2 maxout layers of 240 units, 5 pieces, dropout
    maxouts = [m for m in disc.modules() if isinstance(m, Maxout)]
    assert len(maxouts) == 2
    assert all(m.out_features == 240 and m.pieces == 5 for m in maxouts)
    assert maxouts[0].linear.in_features == 28 * 28
    dropouts = [m for m in disc.modules() if isinstance(m, nn.Dropout)]
    # pylearn2's mnist.yaml of the paper: inputs kept with probability 0.8, hidden units with 0.5
    assert [m.p for m in dropouts] == [0.2, 0.5, 0.5]
    assert not any(isinstance(m, (nn.Sigmoid, nn.ReLU)) for m in disc.modules())
    torch.manual_seed(0)
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    disc.train()
    assert disc(x).shape == (8,)
    assert not torch.allclose(disc(x), disc(x))  # dropout is active in training
    disc.eval()
    assert torch.equal(disc(x), disc(x))


def test_maxout_takes_the_max_over_pieces():
    torch.manual_seed(0)
    layer = Maxout(in_features=3, out_features=2, pieces=4)
    x = torch.randn(5, 3)
    out = layer(x)
    assert out.shape == (5, 2)
    weight, bias = layer.linear.weight.detach(), layer.linear.bias.detach()
    # weight is (2 * 4, 3): rows j*4 .. j*4+3 are the pieces of unit j
    expected = torch.empty(5, 2)
    for n in range(5):
        for j in range(2):
            pieces = [float(weight[j * 4 + k] @ x[n] + bias[j * 4 + k]) for k in range(4)]
            expected[n, j] = max(pieces)
    assert torch.allclose(out, expected, atol=1e-6)


def test_maxout_hand_weights():
    layer = Maxout(in_features=1, out_features=1, pieces=3)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0], [-1.0], [0.0]]))
        layer.linear.bias.copy_(torch.tensor([0.0, 0.0, 0.5]))
    x = torch.tensor([[-2.0], [0.1], [3.0]])
    # max(x, -x, 0.5) = max(|x|, 0.5)
    assert torch.allclose(layer(x), torch.tensor([[2.0], [0.5], [3.0]]))
