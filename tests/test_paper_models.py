"""The papers' own networks (Co-teaching's and JoCoR's CNNs, GCE's ResNet-34, Me-Momentum's
LeNet and ResNets) and the `original` protocol that uses them on the papers' datasets.

The parameter counts are derived by hand from the official definitions (bhanML/Co-teaching
model.py, hongxin001/JoCoR model/cnn.py, AlanChou/Truncated-Loss models/resnet.py,
tmllab/2021_ICCV_Me-Momentum networks/{Lenet,Resnet}.py).  A 3x3 conv with bias has
9*cin*cout + cout parameters, a BatchNorm 2*c (its running statistics are buffers).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from noisybench.bench.cli import main
from noisybench.bench.trainer.protocols import check_recipe_fits_dataset, original_recipes, resolve_recipe
from noisybench.core.errors import BenchError
from noisybench.methods.networks import build_model, check_model_fits, min_image_side
from noisybench.methods.networks.backbones import resnet34
from noisybench.methods.networks.papers import (
    coteaching_cnn,
    jocor_cnn,
    lenet,
    memomentum_resnet18,
    memomentum_resnet34,
)

CIFAR, MNIST = (3, 32, 32), (1, 28, 28)
PAPER_MODELS = ["coteaching_cnn", "jocor_cnn", "lenet", "resnet34", "memomentum_resnet18", "memomentum_resnet34"]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- parameter counts
# Co-teaching's CNN, 3 input channels, 10 classes:
#   c1 3->128          9*3*128   + 128 =     3,584
#   c2, c3 128->128    9*128*128 + 128 =   147,584 each
#   c4 128->256        9*128*256 + 256 =   295,168
#   c5, c6 256->256    9*256*256 + 256 =   590,080 each
#   c7 256->512 (p0)   9*256*512 + 512 = 1,180,160
#   c8 512->256 (p0)   9*512*256 + 256 = 1,179,904
#   c9 256->128 (p0)   9*256*128 + 128 =   295,040
#   bn1..bn9           2*(3*128 + 3*256 + 512 + 256 + 128) = 4,096
#   l_c1 128->10       128*10 + 10 = 1,290
#   total 4,434,570.  1 channel: c1 = 9*128 + 128 = 1,280 (-2,304) -> 4,432,266.
#   100 classes: l_c1 = 12,900 (+11,610) -> 4,446,180.
#
# JoCoR's CNN, 3 channels, 10 classes:
#   c1 3->64 1,792; c2 64->64 36,928; c3 64->128 73,856; c4 128->128 147,584;
#   c5 128->196 9*128*196 + 196 = 225,988; c6 196->16 9*196*16 + 16 = 28,240;
#   bn1..bn6 2*(64+64+128+128+196+16) = 1,192; linear1 256->10 2,570; total 518,150.
#   100 classes: linear 25,700 -> 541,280.  1x28x28: c1 = 640, linear 16*3*3=144 -> 10: 1,450 -> 515,878.
#
# Me-Momentum's LeNet, 1x28x28, 10 classes:
#   conv1 1->6 5x5: 25*6 + 6 = 156; conv2 6->16 5x5: 25*6*16 + 16 = 2,416;
#   fc1 400->120: 48,120; fc2 120->84: 10,164; fc3 84->10: 850; total 61,706.
#   3x32x32: conv1 25*3*6 + 6 = 456, fc1 16*6*6 = 576 -> 120: 69,240 -> 83,126.
#
# CIFAR ResNet-34 (Truncated-Loss ResNet34; BasicBlock: two 3x3 convs without bias + 2 BN, and a
# 1x1 conv + BN shortcut when the shape changes), 3 channels, 10 classes:
#   stem conv 9*3*64 = 1,728, bn 128                                        1,856
#   layer1: 3 x (2*9*64*64 + 4*64) = 3 x 73,984                           221,952
#   layer2: (9*64*128 + 9*128*128 + 4*128 + 64*128 + 2*128 = 230,144)
#           + 3 x (2*9*128*128 + 4*128 = 295,424)                       1,116,416
#   layer3: (9*128*256 + 9*256*256 + 4*256 + 128*256 + 2*256 = 919,040)
#           + 5 x (2*9*256*256 + 4*256 = 1,180,672)                     6,822,400
#   layer4: (9*256*512 + 9*512*512 + 4*512 + 256*512 + 2*512 = 3,673,088)
#           + 2 x (2*9*512*512 + 4*512 = 4,720,640)                    13,114,368
#   linear 512->10                                                          5,130
#   total 21,282,122; 100 classes (+46,170) 21,328,292.  Me-Momentum's ResNet34 is the same
#   (only its stem padding differs).  ResNet-18, the same blocks as [2,2,2,2]:
#   1,856 + 2 x 73,984 + (230,144 + 295,424) + (919,040 + 1,180,672) + (3,673,088 + 4,720,640)
#   + 5,130 = 11,173,962.
@pytest.mark.parametrize("name, shape, classes, expected", [
    ("coteaching_cnn", CIFAR, 10, 4_434_570),
    ("coteaching_cnn", MNIST, 10, 4_432_266),
    ("coteaching_cnn", CIFAR, 100, 4_446_180),
    ("jocor_cnn", CIFAR, 10, 518_150),
    ("jocor_cnn", CIFAR, 100, 541_280),
    ("jocor_cnn", MNIST, 10, 515_878),
    ("lenet", MNIST, 10, 61_706),
    ("lenet", CIFAR, 10, 83_126),
    ("resnet34", CIFAR, 10, 21_282_122),
    ("resnet34", CIFAR, 100, 21_328_292),
    ("memomentum_resnet34", CIFAR, 100, 21_328_292),
    ("memomentum_resnet18", CIFAR, 10, 11_173_962),
])
def test_parameter_counts_match_the_official_definitions(name, shape, classes, expected):
    assert count(build_model(name, classes, shape)) == expected


# ----------------------------------------------------------------------------- structure
def test_coteaching_cnn_layers():
    net = build_model("coteaching_cnn", 10, CIFAR)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 128, 128, 256, 256, 256, 512, 256, 128]
    assert [c.padding for c in convs] == [(1, 1)] * 6 + [(0, 0)] * 3
    assert all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 9
    leaky = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 9 and all(m.negative_slope == 0.01 for m in leaky)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout2d)] == [0.0, 0.0]  # as the code ran
    paper = build_model("coteaching_cnn_dropout", 10, CIFAR)
    assert [m.p for m in paper.modules() if isinstance(m, nn.Dropout2d)] == [0.25, 0.25]  # its Table 3
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 2
    assert net.fc.in_features == 128


def test_jocor_cnn_layers():
    net = build_model("jocor_cnn", 10, CIFAR)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 196, 16]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is not None for c in convs)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 and all(b.momentum == 0.1 for b in bns)
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 6
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 3
    assert not any(isinstance(m, (nn.Dropout, nn.Dropout2d)) for m in net.modules())
    assert net.fc.in_features == 256  # 16 channels x 4 x 4, JoCoR's linear1


def test_lenet_layers():
    net = build_model("lenet", 10, MNIST)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(6, (5, 5), (2, 2)), (16, (5, 5), (0, 0))]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]


@pytest.mark.parametrize("name, blocks, stem_padding", [
    ("resnet34", [3, 4, 6, 3], 1), ("memomentum_resnet34", [3, 4, 6, 3], 0), ("memomentum_resnet18", [2, 2, 2, 2], 0),
])
def test_resnet_depth_and_stem(name, blocks, stem_padding):
    net = build_model(name, 10, CIFAR)
    assert [len(stage) for stage in net.body.layers] == blocks
    assert net.body.conv1.kernel_size == (3, 3) and net.body.conv1.padding == (stem_padding, stem_padding)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())


def last_conv_map(net: nn.Module, shape) -> tuple[int, ...]:
    seen = []
    last = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
    handle = last.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[2:])))
    net.eval()(torch.randn(2, *shape))
    handle.remove()
    return seen[0]


def test_spatial_sizes_follow_the_references():
    # Co-teaching: 32 -> 16 -> 8 -> 6, 4, 2 (unpadded convs); 28 -> 14 -> 7 -> 5, 3, 1.
    assert last_conv_map(build_model("coteaching_cnn", 10, CIFAR), CIFAR) == (2, 2)
    assert last_conv_map(build_model("coteaching_cnn", 10, MNIST), MNIST) == (1, 1)
    # Me-Momentum's unpadded stem: 32 -> 30 -> 30, 15, 8, 4; the padded one keeps 32 -> 4.
    assert last_conv_map(build_model("memomentum_resnet18", 10, CIFAR).body.conv1, CIFAR) == (30, 30)
    assert last_conv_map(build_model("resnet34", 10, CIFAR).body.conv1, CIFAR) == (32, 32)
    assert last_conv_map(build_model("memomentum_resnet18", 10, CIFAR).body.layers, (64, 30, 30)) == (4, 4)


@pytest.mark.parametrize("name", PAPER_MODELS)
@pytest.mark.parametrize("shape", [CIFAR, MNIST])
def test_logits_and_features_for_cifar_and_mnist(name, shape):
    feature_dims = {"coteaching_cnn": 128, "jocor_cnn": 16 * (shape[1] // 8) ** 2, "lenet": 84}
    net = build_model(name, 10, shape).eval()
    logits, features = net(torch.randn(2, *shape), return_features=True)
    assert logits.shape == (2, 10)
    assert features.shape == (2, feature_dims.get(name, 512))


def test_coteaching_cnn_drops_nothing_as_its_code_ran_and_the_paper_reading_drops_while_training_only():
    torch.manual_seed(0)
    x = torch.randn(4, *CIFAR)
    as_run = build_model("coteaching_cnn", 10, CIFAR).train()  # F.dropout2d's training=False default
    assert torch.equal(as_run(x), as_run(x))  # BatchNorm on batch statistics is deterministic
    net = build_model("coteaching_cnn_dropout", 10, CIFAR)
    assert not torch.equal(net.train()(x), net(x))  # the difference is dropout
    assert torch.equal(net.eval()(x), net(x))
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in as_run.parameters())


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_one_training_step(name):
    torch.manual_seed(0)
    net = build_model(name, 10, CIFAR).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    before = [p.detach().clone() for p in net.parameters()]
    loss = nn.functional.cross_entropy(net(torch.randn(2, *CIFAR)), torch.tensor([1, 7]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, p) for a, p in zip(before, net.parameters()))


# ----------------------------------------------------------------------------- image sizes
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # a 0-input linear, one pixel too small
@pytest.mark.parametrize("factory, name, side", [
    (coteaching_cnn, "coteaching_cnn", 28), (jocor_cnn, "jocor_cnn", 8), (lenet, "lenet", 12),
    (memomentum_resnet18, "memomentum_resnet18", 3), (memomentum_resnet34, "memomentum_resnet34", 3),
    (resnet34, "resnet34", 1),
])
def test_min_image_side_is_exact(factory, name, side):
    assert min_image_side(name) == side
    build_model(name, 10, (1, side, side)).eval()(torch.randn(2, 1, side, side))
    if side > 1:
        with pytest.raises(BenchError, match=rf"^model {name} needs images of at least {side}x{side}"):
            build_model(name, 10, (1, side - 1, side - 1))
        with pytest.raises((RuntimeError, ValueError)):  # the network itself cannot take one pixel less
            factory(10, (1, side - 1, side - 1)).eval()(torch.randn(2, 1, side - 1, side - 1))


def test_a_model_too_big_for_the_dataset_is_a_one_line_error():
    digits = SimpleNamespace(name="digits", image_shape=(1, 8, 8), train_stream=None)
    recipe = resolve_recipe("original", "cifar10", "coteaching")
    with pytest.raises(BenchError) as err:
        check_recipe_fits_dataset(recipe, digits, "original")
    message = str(err.value)
    assert "\n" not in message
    assert "coteaching_cnn needs images of at least 28x28" in message and "8x8 images of digits" in message
    assert "--model" in message and "mlp" in message and "lenet" not in message  # lenet needs 12x12


def test_cli_refuses_a_model_too_big_for_the_images(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--model", "coteaching_cnn", "--epochs", "1", "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert "coteaching_cnn needs images of at least 28x28" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the `original` protocol
SHAPES = {"mnist": MNIST, "cifar10": CIFAR, "cifar100": CIFAR, "clothing1m": (3, 224, 224)}


@pytest.mark.parametrize("method, dataset, model", [
    ("coteaching", "mnist", "coteaching_cnn"), ("coteaching", "cifar10", "coteaching_cnn"),
    ("coteaching", "cifar100", "coteaching_cnn"),
    ("sigua", "mnist", "coteaching_cnn"), ("sigua", "cifar10", "coteaching_cnn"),
    ("sigua", "cifar100", "resnet18"),  # SIGUA's code has no CIFAR-100: lend-paper's model stays
    ("jocor", "mnist", "mlp1"), ("jocor", "cifar10", "jocor_cnn"), ("jocor", "cifar100", "jocor_cnn"),
    ("gce", "mnist", "mlp1"), ("gce", "cifar10", "resnet34"), ("gce", "cifar100", "resnet34"),
    ("me_momentum", "mnist", "lenet"), ("me_momentum", "cifar10", "memomentum_resnet18"),
    ("me_momentum", "cifar100", "memomentum_resnet34"),
    ("standard", "cifar10", "resnet18"), ("lend", "cifar10", "lend_preact_resnet18"),
    ("lend", "cifar100", "lend_preact_resnet18"), ("lend", "mnist", "mlp1"),
    ("coteaching", "animal10n", "vgg19_bn"), ("gce", "clothing1m", "resnet50"), ("jocor", "food101n", "resnet50"),
])
def test_original_uses_the_papers_networks_on_their_datasets(method, dataset, model):
    recipe = resolve_recipe("original", dataset, method)
    assert recipe.model == model
    if dataset in SHAPES:
        check_model_fits(recipe.model, SHAPES[dataset], dataset)
    assert resolve_recipe("original", dataset, method, model="cnn").model == "cnn"  # --model still wins


@pytest.mark.parametrize("method", sorted(original_recipes()))
def test_original_on_digits_keeps_the_quick_model(method):
    quick = resolve_recipe("quick", "digits", method)
    assert resolve_recipe("original", "digits", method).model == quick.model == "mlp"


def test_every_paper_entry_names_a_model_that_fits_its_dataset():
    entries = [(method, dataset, entry) for method, original in original_recipes().items()
               for dataset, entry in original.per_dataset.items()]
    assert len(entries) >= 14  # Co-teaching, JoCoR, GCE and Me-Momentum on 3 datasets each, SIGUA on 2
    for method, dataset, (fields, source) in entries:
        if not fields:  # the dataset's own protocol is the paper's (DivideMix on Clothing1M: dividemix-paper)
            assert "protocol" in source, (method, dataset)
            continue
        assert fields.get("model"), (method, dataset)
        check_model_fits(fields["model"], SHAPES[dataset], dataset)
        assert source and dataset.replace("cifar", "CIFAR-").replace("mnist", "MNIST") in source


def test_the_per_dataset_entries_keep_each_papers_recipe():
    cot10 = resolve_recipe("original", "cifar10", "coteaching")
    cot100 = resolve_recipe("original", "cifar100", "coteaching")
    for recipe in (cot10, cot100, resolve_recipe("original", "cifar100", "jocor"),
                   resolve_recipe("original", "mnist", "sigua")):
        assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.epochs, recipe.schedule) == (
            "adam", 1e-3, 128, 199, "coteaching")
        assert not recipe.augment and not recipe.normalize
    # Co-teaching's and JoCoR's main.py start the decay at epoch 100 on CIFAR-100, 80 elsewhere.
    assert cot10.decay_start == 80 and cot100.decay_start == 100
    assert resolve_recipe("original", "cifar100", "jocor").decay_start == 100
    assert resolve_recipe("original", "mnist", "jocor").decay_start == 80
    gce100 = resolve_recipe("original", "cifar100", "gce")
    assert (gce100.optimizer, gce100.epochs, gce100.milestones, gce100.augment) == ("sgd", 150, (80, 120), True)
    # Me-Momentum on MNIST: ToTensor + Normalize, no augmentation; on CIFAR crop + flip.
    mm_mnist = resolve_recipe("original", "mnist", "me_momentum")
    mm_cifar = resolve_recipe("original", "cifar10", "me_momentum")
    assert (mm_mnist.augment, mm_mnist.normalize, mm_mnist.optimizer, mm_mnist.lr) == (False, True, "sgd", 0.01)
    assert (mm_cifar.augment, mm_cifar.normalize) == (True, True)


@pytest.mark.parametrize("dataset, mean_std", [
    ("mnist", ((0.1307,), (0.3081,))),
    ("cifar10", ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))),
    ("cifar100", ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))),
])
def test_me_momentum_original_normalises_with_its_main_py_constants(dataset, mean_std):
    recipe = resolve_recipe("original", dataset, "me_momentum")
    assert recipe.normalize and recipe.mean_std == mean_std


def test_no_original_recipe_flips_or_crops_mnist():
    """A horizontally flipped digit is another glyph: no method's own recipe may augment MNIST."""
    for method in ("coteaching", "jocor", "sigua", "gce", "me_momentum", "standard", "lend", "self_learning"):
        assert not resolve_recipe("original", "mnist", method).augment, method
