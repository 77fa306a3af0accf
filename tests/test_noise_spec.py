"""Noise spec parsing: canonical text, every malformed-spec message, and the kind registry."""
from __future__ import annotations

import numpy as np
import pytest

import noisybench.noise as noise
from noisybench.core.errors import BenchError
from noisybench.noise import NoiseSpec, noise_kinds, parse_noise, registry


@pytest.mark.parametrize(
    "text, kind, rate, arg, canonical",
    [
        ("sym:0.4", "sym", 0.4, None, "sym:0.4"),
        ("sym:0.40", "sym", 0.4, None, "sym:0.4"),
        ("SYM:.4", "sym", 0.4, None, "sym:0.4"),
        ("  pair : 0.45 ", "pair", 0.45, None, "pair:0.45"),
        ("asym:0.3", "asym", 0.3, None, "asym:0.3"),
        ("inst:4e-1", "inst", 0.4, None, "inst:0.4"),
        ("sym:0", "sym", 0.0, None, "sym:0.0"),
        ("sym:-0.0", "sym", 0.0, None, "sym:0.0"),
        ("clean", "clean", None, None, "clean"),
        ("Clean", "clean", None, None, "clean"),
        ("real", "real", None, None, "real"),
        ("cifar10n:worse", "cifar10n", None, "worse", "cifar10n:worse"),
        ("cifar10n:AGGRE", "cifar10n", None, "aggre", "cifar10n:aggre"),
        ("cifar10n:rand3", "cifar10n", None, "rand3", "cifar10n:rand3"),
        ("cifar100n:noisy", "cifar100n", None, "noisy", "cifar100n:noisy"),
        ("file:My Labels/run1.npy", "file", None, "My Labels/run1.npy", "file:My Labels/run1.npy"),
        ("file:C:/labels.npy", "file", None, "C:/labels.npy", "file:C:/labels.npy"),
    ],
)
def test_parse_gives_canonical_spec(text, kind, rate, arg, canonical):
    spec = parse_noise(text)
    assert spec == NoiseSpec(kind=kind, rate=rate, arg=arg, text=canonical)
    assert str(spec) == canonical


@pytest.mark.parametrize("text", ["sym:0.4", "pair:0.45", "clean", "cifar10n:worse", "file:a.npy", "inst:0.123456789"])
def test_canonical_text_parses_back_to_the_same_spec(text):
    spec = parse_noise(text)
    assert parse_noise(spec.text) == spec
    assert parse_noise(spec) is spec


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("foo:0.2", ["unknown noise kind 'foo'", "choose one of", "sym:R", "pair:R", "cifar10n:"]),
        ("symm:0.2", ["unknown noise kind 'symm'", "did you mean 'sym'"]),
        ("", ["empty noise spec", "sym:0.4"]),
        ("   ", ["empty noise spec"]),
        ("sym", ["'sym' is missing its noise rate", "write sym:R", "sym:0.4"]),
        ("sym:", ["missing its noise rate", "write sym:R"]),
        ("sym:abc", ["noise rate 'abc'", "is not a number", "write sym:R"]),
        ("pair:0.4x", ["noise rate '0.4x'", "not a number", "pair:0.4 for 40%"]),
        ("sym:1.4", ["noise rate 1.4", "outside [0, 1)", "sym:0.4 for 40%"]),
        ("sym:1", ["noise rate 1", "outside [0, 1)"]),
        ("sym:40", ["noise rate 40", "outside [0, 1)", "fraction"]),
        ("sym:-0.1", ["noise rate -0.1", "outside [0, 1)"]),
        ("asym:nan", ["noise rate nan", "outside [0, 1)"]),
        ("inst:inf", ["noise rate inf", "outside [0, 1)"]),
        ("clean:0.2", ["clean takes no rate", "write just clean", "sym:R"]),
        ("clean:", ["clean takes no rate"]),
        ("real:0.1", ["real takes no rate", "write just real"]),
        ("cifar10n", ["needs a label set", "cifar10n:aggre", "cifar10n:worse", "cifar10n:rand1"]),
        ("cifar10n:worst", ["unknown cifar10n label set 'worst'", "did you mean 'worse'", "cifar10n:rand3"]),
        ("cifar10n:random1", ["unknown cifar10n label set 'random1'", "cifar10n:rand1"]),
        ("cifar100n:clean", ["unknown cifar100n label set 'clean'", "cifar100n:noisy"]),
        ("file", ["needs a path", "file:PATH.npy"]),
        ("file:labels.txt", ["'labels.txt' is not a .npy file", "numpy.save", "int64"]),
    ],
)
def test_malformed_specs_are_one_line_errors_naming_problem_and_fix(text, fragments):
    with pytest.raises(BenchError) as caught:
        parse_noise(text)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_non_string_spec_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_noise(0.4)  # type: ignore[arg-type]


def test_noise_kinds_lists_every_kind_with_syntax_and_description():
    kinds = noise_kinds()
    assert list(kinds) == ["clean", "sym", "pair", "asym", "inst", "cifar10n", "cifar100n", "real", "file"]
    for name, line in kinds.items():
        assert "\n" not in line and len(line) > 20
    for name in ("sym", "pair", "asym", "inst", "cifar10n", "cifar100n", "file"):
        assert kinds[name].startswith(f"{name}:"), "kinds with an argument show their syntax first"
    assert kinds["clean"] == "the clean training labels (no noise)"
    assert "aggre|worse|rand1|rand2|rand3" in kinds["cifar10n"]
    assert "Xia" in kinds["inst"] and "Han" in kinds["pair"] and "Patrini" in kinds["sym"]


def test_registry_refuses_duplicates_and_inconsistent_declarations():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_kind("sym", takes=registry.TAKES_RATE, syntax="sym:R", description="again")(lambda *a: None)
    with pytest.raises(ValueError, match="takes="):
        registry.register_kind("bad", takes="number", syntax="bad", description="x")
    with pytest.raises(ValueError, match="variants"):
        registry.register_kind("bad", takes=registry.TAKES_VARIANT, syntax="bad:V", description="x")


def test_a_new_kind_is_one_decorator_away(monkeypatch):
    """A kind registered by a decorator parses, dispatches and is listed; the registry is restored after."""
    from noisybench.datasets.registry import Dataset

    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))

    @registry.register_kind(
        "shift", takes=registry.TAKES_RATE, syntax="shift:R", description="every label -> label + 1 (test kind)",
        nominal_rate=lambda spec, dataset: 1.0,
    )
    def sample_shift(spec, dataset, rng, data_root):
        return registry.Sampled(labels=(dataset.train_labels + 1) % dataset.num_classes, transition=None)

    labels = np.arange(12, dtype=np.int64) % 3
    dataset = Dataset(
        name="tiny",
        train_images=np.zeros((12, 1, 2, 2), np.uint8),
        train_labels=labels,
        test_images=np.zeros((3, 1, 2, 2), np.uint8),
        test_labels=np.arange(3, dtype=np.int64),
        class_names=("a", "b", "c"),
    )
    assert parse_noise("shift:0.5").text == "shift:0.5"
    noisy = noise.apply_noise("shift:0.5", dataset, seed=0)
    np.testing.assert_array_equal(noisy.labels, (labels + 1) % 3)
    assert noisy.realised_rate == 1.0 and noisy.nominal_rate == 1.0
    assert "shift" in noise_kinds()
