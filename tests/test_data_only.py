"""Nothing in a results directory or a downloaded file runs code (issue #29): adversarial files.

Each forged file is a pickle whose loading would create a marker file -- a checkpoint.pt with its
checksum header recomputed, a CIFAR python batch, a CIFAR-N ``.pt`` label file -- and each test
checks that the marker never appears, that the file is refused in one line, and that a resumed
trial ends with the numbers of an uninterrupted run.  The forged payloads are first shown to work
(loaded the old, unsafe way they do create a marker), so that a test cannot pass because its
attack was a dud.  Also: job folders that other users can write are refused, the results directory
warning, and real-format CIFAR batches (Python 2 pickles, as released) still load.
"""
from __future__ import annotations

import io
import os
import pathlib
import pickle
import stat

import numpy as np
import pytest
import torch
from helpers import epoch_metrics, run_until_killed

from noisybench.bench.cli import main
from noisybench.bench.trainer.trial import run_trial
from noisybench.core.errors import BenchError
from noisybench.core.spec import TrialSpec
from noisybench.datasets.cifar import load_cifar10, load_cifar100
from noisybench.datasets.dataonly import NotDataOnly, load_pickle_data_only, torch_load_data_only
from noisybench.noise.human import read_label_file
from noisybench.results.checkpoints import NotDataState, check_data_only
from noisybench.results.store import TrialStore, read_checked, write_checked
from noisybench.slurm.options import LauncherOptions
from noisybench.slurm.submission import job_folders

EPOCHS = 5


class Touch:
    """Unpickled, it creates ``marker``: what a forged file would do instead of something worse."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def forged_torch_file(marker, **content) -> bytes:
    """A real torch file (zip, protocol 2) whose data.pkl calls Path.touch(marker) when unpickled."""
    buffer = io.BytesIO()
    torch.save({**content, "payload": Touch(marker)}, buffer)
    return buffer.getvalue()


def test_the_forged_payloads_do_run_code_when_unpickled_the_old_way(tmp_path):
    marker = tmp_path / "ran"
    torch.load(io.BytesIO(forged_torch_file(marker)), weights_only=False)
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps({b"data": Touch(marker)}, protocol=2), encoding="bytes")
    assert marker.exists()


def tiny_spec() -> TrialSpec:
    return TrialSpec(dataset="digits", method="standard", noise="sym:0.4", seed=0, protocol="quick", epochs=EPOCHS)


@pytest.mark.parametrize("forged, resumed_from", [
    (("checkpoint.pt",), 2),  # falls back to previous-checkpoint.pt, as for a damaged one
    (("checkpoint.pt", "previous-checkpoint.pt"), 0),  # no good state left: restarts
])
def test_a_forged_checkpoint_runs_nothing_and_the_trial_ends_as_an_uninterrupted_one(
        forged, resumed_from, tmp_path, monkeypatch, capsys, one_cpu_thread):
    spec = tiny_spec()
    run_trial(spec, tmp_path / "whole", device="cpu")
    whole = epoch_metrics(tmp_path / "whole", spec)

    run_until_killed(spec, tmp_path / "cut", monkeypatch, epoch=3)
    trial = TrialStore(tmp_path / "cut").trial(spec)
    assert stat.S_IMODE(trial.checkpoint_file.stat().st_mode) == 0o600  # the owner's alone
    marker = tmp_path / "ran"
    for name in forged:
        # What someone who can write the results directory does: a payload with code, and the
        # checksum header recomputed (it is not keyed), claiming this trial's spec and a late epoch.
        write_checked(trial.path / name, forged_torch_file(marker, spec_hash=spec.hash, epoch=3), {"epoch": 3})
        assert read_checked(trial.path / name) is not None
    capsys.readouterr()

    summary = run_trial(spec, tmp_path / "cut", device="cpu")
    out = capsys.readouterr().out
    assert not marker.exists()
    for name in forged:
        assert f"{spec.label()}: {name} is not a data-only checkpoint (it names " in out, out
    assert ("resumed from the last good state, previous-checkpoint.pt (epoch 2)" in out) == (resumed_from == 2), out
    assert summary.resumed_from == resumed_from
    assert epoch_metrics(tmp_path / "cut", spec) == whole  # line for line, timings aside


def test_a_forged_checkpoint_through_bench_run_and_bench_verify(tmp_path, monkeypatch, capsys, one_cpu_thread):
    """The issue's scenario from the command line: verify names the forged file without loading it,
    --repair removes it, and `bench run` finishes the trial with the uninterrupted numbers."""
    spec = tiny_spec()
    args = ["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "1", "--epochs", str(EPOCHS),
            "--device", "cpu"]
    assert main(args + ["--results", str(tmp_path / "whole")]) == 0
    run_until_killed(spec, tmp_path / "cut", monkeypatch, epoch=3)
    trial = TrialStore(tmp_path / "cut").trial(spec)
    marker = tmp_path / "ran"
    write_checked(trial.checkpoint_file, forged_torch_file(marker, spec_hash=spec.hash, epoch=3), {"epoch": 3})
    capsys.readouterr()

    assert main(["verify", "--results", str(tmp_path / "cut")]) == 1
    out = capsys.readouterr().out
    assert f"refused  {trial.path.name}: checkpoint.pt is not a data-only checkpoint (it names " in out, out
    assert "--repair removes it" in out and not marker.exists()
    assert main(["verify", "--results", str(tmp_path / "cut"), "--repair"]) == 0
    assert not trial.checkpoint_file.exists() and trial.previous_checkpoint_file.exists()
    assert main(["verify", "--results", str(tmp_path / "cut")]) == 0

    write_checked(trial.checkpoint_file, forged_torch_file(marker, spec_hash=spec.hash, epoch=3), {"epoch": 3})
    assert main(args + ["--results", str(tmp_path / "cut")]) == 0
    out = capsys.readouterr().out
    assert "checkpoint.pt is not a data-only checkpoint" in out and not marker.exists()
    assert epoch_metrics(tmp_path / "cut", spec) == epoch_metrics(tmp_path / "whole", spec)


def test_a_raw_pickle_with_a_recomputed_header_is_refused_too(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(NotDataOnly, match="not data|Unsupported operand"):
        torch_load_data_only(io.BytesIO(pickle.dumps({"epoch": 1, "x": Touch(marker)}, protocol=2)))
    assert not marker.exists()


def test_a_state_that_could_not_be_read_back_as_data_is_refused_before_it_is_saved():
    check_data_only({"a": [torch.zeros(2), (1, 2.0, "x", None)], "b": {1: torch.Size([2])}}, "state")
    with pytest.raises(NotDataState, match=r"numpy.ndarray at state\['method'\]\['rng'\]"):
        check_data_only({"method": {"rng": np.zeros(3)}}, "standard's checkpoint")


# --- downloaded files -------------------------------------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 strings and numpy's reconstruction under numpy.core, as the CIFAR
    release's pickles (written by Python 2) hold them -- not as Python 3's _codecs.encode calls."""

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(path: pathlib.Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        Py2Pickler(handle, protocol=2).dump(content)


def rows(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root: pathlib.Path, writer=py2_pickle) -> None:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    for b in range(1, 6):
        writer(folder / f"data_batch_{b}", {b"batch_label": b"training batch", b"labels": [b % 10, 3],
                                            b"data": rows(rng, 2), b"filenames": [b"a.png", b"b.png"]})
    writer(folder / "test_batch", {b"batch_label": b"testing batch", b"labels": [7, 3], b"data": rows(rng, 2),
                                   b"filenames": [b"c.png", b"d.png"]})
    writer(folder / "batches.meta", {b"label_names": [f"class{i}".encode() for i in range(10)],
                                     b"num_cases_per_batch": 2, b"num_vis": 3072})


def test_python2_cifar_batches_as_released_load_as_before(tmp_path):
    write_cifar10(tmp_path)
    raw = pickletools_globals(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert raw == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}  # the release's names
    data = load_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as handle:
        unsafe = pickle.load(handle, encoding="bytes")  # the old reader, on a file we wrote ourselves
    np.testing.assert_array_equal(data.train_images[:2].reshape(2, -1), unsafe[b"data"])
    assert data.train_labels.tolist() == [1, 3, 2, 3, 3, 3, 4, 3, 5, 3]

    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    py2_pickle(folder / "train", {b"data": rows(rng, 3), b"fine_labels": [0, 99, 5], b"coarse_labels": [0, 19, 3]})
    py2_pickle(folder / "test", {b"data": rows(rng, 2), b"fine_labels": [1, 2], b"coarse_labels": [0, 1]})
    py2_pickle(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                                 b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    assert load_cifar100(tmp_path).train_labels.tolist() == [0, 99, 5]


def pickletools_globals(path) -> set[str]:
    import pickletools

    return {arg for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}


@pytest.mark.parametrize("evil", ["touch", "object-array", "os.system"])
def test_a_forged_cifar_batch_is_refused_in_one_line_naming_it_with_nothing_run(evil, tmp_path, capsys):
    write_cifar10(tmp_path)
    marker = tmp_path / "ran"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    content = {b"labels": [1, 2], b"data": rows(np.random.default_rng(0), 2)}
    if evil == "touch":
        content[b"filenames"] = [Touch(marker)]
    elif evil == "object-array":
        content[b"data"] = np.array([Touch(marker)], dtype=object)
    with open(batch, "wb") as handle:
        if evil == "os.system":
            handle.write(b"cos\nsystem\n(Vtouch " + str(marker).encode() + b"\ntR.")
        else:
            pickle.dump(content, handle, protocol=2)

    with pytest.raises(BenchError) as refused:
        load_cifar10(tmp_path)
    message = str(refused.value)
    assert str(batch) in message and "is not data only" in message and "\n" not in message, message
    assert not marker.exists()

    code = main(["noise", "--dataset", "cifar10", "--noise", "sym:0.2", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(batch) in err and "not data only" in err, err
    assert not marker.exists()


def test_the_real_cifar_n_files_load_as_data(tmp_path):
    folder = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar-n"
    if not (folder / "CIFAR-10_human.pt").exists():
        pytest.skip(f"the real CIFAR-N files are not at {folder}")
    ten = read_label_file(folder / "CIFAR-10_human.pt")
    assert sorted(ten) == ["aggre_label", "clean_label", "random_label1", "random_label2", "random_label3",
                           "worse_label"]
    assert all(a.shape == (50000,) and a.dtype == np.int64 for a in ten.values())
    assert round(float((ten["worse_label"] != ten["clean_label"]).mean()), 4) == 0.4021
    hundred = read_label_file(folder / "CIFAR-100_human.pt")
    assert round(float((hundred["noisy_label"] != hundred["clean_label"]).mean()), 4) == 0.402


def test_a_forged_cifar_n_file_is_refused_in_one_line_naming_it_with_nothing_run(tmp_path, capsys):
    write_cifar10(tmp_path)
    marker = tmp_path / "ran"
    path = tmp_path / "cifar-n" / "CIFAR-10_human.pt"
    path.parent.mkdir()
    path.write_bytes(forged_torch_file(marker, clean_label=np.zeros(10, np.int64)))

    with pytest.raises(BenchError, match="is not data only: it names ") as refused:
        read_label_file(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    code = main(["noise", "--dataset", "cifar10", "--noise", "cifar10n:worse", "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(path) in err and "not data only" in err, err
    assert not marker.exists()

    # A genuine file of the published format (torch.save'd numpy arrays) still loads.
    labels = load_cifar10(tmp_path).train_labels
    torch.save({"clean_label": labels.copy(), "worse_label": (labels + 1) % 10}, path)
    assert read_label_file(path)["worse_label"].tolist() == ((labels + 1) % 10).tolist()


def test_a_non_numeric_array_in_a_label_file_is_refused(tmp_path):
    path = tmp_path / "labels.pt"
    torch.save({"clean_label": np.array(["a", "b"], dtype=object)}, path)
    with pytest.raises(NotDataOnly):
        torch_load_data_only(path, numpy_arrays=True)
    with pytest.raises(NotDataOnly):
        load_pickle_data_only(io.BytesIO(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2)))


# --- launch folders -----------------------------------------------------------------------------
def test_job_folders_are_created_for_their_owner_alone_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        folder = job_folders(tmp_path / "results", LauncherOptions(launcher="local"))
        own = job_folders(tmp_path / "results", LauncherOptions(launcher="slurm", folder=str(tmp_path / "jobs")))
    finally:
        os.umask(old)
    assert folder == (tmp_path / "results" / ".submitit").resolve()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(own.stat().st_mode) == 0o700


@pytest.mark.parametrize("launcher, where", [("local", ".submitit"), ("local", "jobs"), ("slurm", ".submitit"),
                                             ("slurm", "jobs")])
def test_a_job_folder_others_can_write_is_refused_in_one_line(launcher, where, tmp_path, capsys, monkeypatch):
    import noisybench.slurm.commands

    # The folder is checked before anything is submitted: no cluster needed to see the refusal.
    monkeypatch.setattr(noisybench.slurm.commands, "check_slurm_reachable", lambda partition: None)
    results = tmp_path / "results"
    folder = (results / where) if where == ".submitit" else tmp_path / where
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    results.mkdir(exist_ok=True)
    results.chmod(0o755)  # whatever the umask: only the job folder is others' to write here
    args = ["run", "--methods", "standard", "--noise", "sym:0.4", "--seeds", "1", "--epochs", "1",
            "--launcher", launcher, "--results", str(results), "--device", "cpu"]
    if where != ".submitit":
        args += ["--slurm-folder", str(folder)]
    before = sorted(p.name for p in results.rglob("*"))
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("bench: error: ") and err.count("\n") == 1, err
    assert f"is writable by other users (mode 0777)" in err and f"chmod go-w {folder.resolve()}" in err, err
    assert sorted(p.name for p in results.rglob("*")) == before  # nothing written


def test_bench_run_warns_once_when_others_can_write_the_results_directory(tmp_path, capsys, one_cpu_thread):
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o775)
    args = ["run", "--methods", "standard", "--noise", "sym:0.4,pair:0.3", "--seeds", "1", "--epochs", "1",
            "--results", str(results), "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("is writable by other users") == 1 and f"chmod go-w {results}" in err, err
    results.chmod(0o755)
    assert main(args) == 0
    assert "writable by other users" not in capsys.readouterr().err
