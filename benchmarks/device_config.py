"""Where the device check finds things and the sizes it runs at: the checkout, the `bench`
command, the methods, the real Fashion-MNIST files, and the full (GPU) and --tiny (CPU) sizes
with each step's time limit."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# -P: the checkout root is not put on sys.path, so the code is imported as noisybench.* only,
# as an install would have it (device_check.sh puts the namespace shim on PYTHONPATH).
BENCH = [PYTHON, "-P", "-m", "noisybench.bench.cli"]
METHODS = ("standard", "coteaching", "jocor", "sigua", "gce", "lend", "me_momentum", "self_learning", "elr",
           "elr_plus", "dividemix")  # every built-in method (tests/test_device_check.py holds it to the registry)
# Real images: Fashion-MNIST, read from <checkout>/data/FashionMNIST/raw (copied there from Debian's
# package and carried with the working tree to a machine without it) or Debian's folder.
FASHION_DATA_ROOT = ROOT / "data"
FASHION_HOW_TO = ("make data here (Debian's dataset-fashion-mnist), then mkdir -p data/FashionMNIST/raw && "
                  "cp /usr/share/datasets/fashion-mnist/*.gz data/FashionMNIST/raw/ and carry data/ with the checkout")


# Sizes and time limits.  GPU: the real protocol (ResNet-18, batch 256, 50,000 CIFAR images);
# the limits are ceilings, the overall --budget (default 460 s) is what keeps the run under 8
# minutes: a step that would start past it is skipped (and the check fails), a running command
# is stopped at it.
GPU = {
    "speed_args": [], "pack": "1,2,4,8", "lend_args": ["--model", "resnet18"], "run_args": [],
    "cifar_train": 50_000, "cifar_test": 10_000,
    "limits": {"environment": 60, "pytest": 90, "fashion": 150, "speed": 120, "pack": 120, "lend": 60,
               "precision": 90, "trainer": 270, "resume": 90},
    # Fashion-MNIST under the GPU recipe it has (CausalNL's ResNet-18, 150 epochs), cut to 3 epochs:
    # enough for its seconds per epoch and a sane accuracy, and for the full trial's cost.
    "fashion_args": ["--protocol", "causalnl-paper", "--noise", "inst:0.4", "--epochs", "3"],
    "budget": 460,
}
# Tiny: LeNet-5 rather than the 6-conv `cnn` -- on a shared 2-core CPU `cnn` trains ~30x slower
# (about 110 img/s against 3,200), and 3 epochs of all 8 methods took over 4 minutes with it.
TINY_MODEL = "lenet"
TINY = {
    "speed_args": ["--model", TINY_MODEL, "--train-size", "256", "--eval-images", "64", "--steps", "2",
                   "--warmup", "1", "--batch-size", "32"],
    "pack": "1,2", "lend_args": ["--model", TINY_MODEL, "--batch-size", "32", "--steps", "3", "--warmup", "1"],
    "run_args": ["--model", TINY_MODEL], "cifar_train": 500, "cifar_test": 100,
    "limits": {"environment": 60, "pytest": 120, "fashion": 120, "speed": 120, "pack": 120, "lend": 60,
               "precision": 90, "trainer": 300, "resume": 120},
    "fashion_args": ["--protocol", "quick", "--noise", "sym:0.5", "--epochs", "1"],
    "budget": None,
}
