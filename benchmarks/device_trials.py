"""The device check's real `bench run` trials: every method for 3 epochs on a synthetic CIFAR-10
release (then `bench table` and `bench verify`), one trial killed after a checkpoint and
resumed, and real Fashion-MNIST timed per epoch.  Each function fills one step's results and
problems from the trials' directories."""
from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path

from device_config import BENCH, FASHION_DATA_ROOT, FASHION_HOW_TO, METHODS
from device_runner import Step, log


def write_synthetic_cifar10(root: Path, num_train: int, num_test: int, seed: int = 0) -> None:
    """A CIFAR-10 release in the exact python-pickle format (tests/test_datasets_real.py's
    write_cifar10, datasets/cifar.py): random uint8 pixels, random labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]

    def dump(name: str, content: dict) -> None:
        with open(directory / name, "wb") as handle:
            pickle.dump(content, handle, protocol=2)  # the release's Python 2 pickles

    per_batch = [num_train // 5 + (1 if b < num_train % 5 else 0) for b in range(5)]
    for b, count in enumerate(per_batch, start=1):
        dump(f"data_batch_{b}", {
            b"batch_label": f"training batch {b} of 5".encode(),
            b"labels": rng.integers(0, 10, count).tolist(),
            b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            b"filenames": [f"synthetic_{b}_{i}.png".encode() for i in range(count)],
        })
    dump("test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": rng.integers(0, 10, num_test).tolist(),
                        b"data": rng.integers(0, 256, size=(num_test, 3072), dtype=np.uint8),
                        b"filenames": [f"synthetic_test_{i}.png".encode() for i in range(num_test)]})
    dump("batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch[0], b"num_vis": 3072})


def read_trials(results: Path) -> list[dict]:
    """Every trial directory's method, state, epochs, seconds and per-epoch seconds."""
    trials = []
    for spec_file in sorted(results.glob("*/spec.json")):
        directory = spec_file.parent
        record = json.loads(spec_file.read_text())
        spec = record.get("spec", {})
        metrics = [json.loads(ln) for ln in (directory / "metrics.jsonl").read_text().splitlines() if ln.strip()] \
            if (directory / "metrics.jsonl").exists() else []
        done = json.loads((directory / "done.json").read_text()) if (directory / "done.json").exists() else None
        trials.append({
            "method": spec.get("method"), "dir": directory.name,
            "state": "done" if done else ("failed" if (directory / "failed.json").exists() else "incomplete"),
            # A method may train past the protocol's epochs (Me-Momentum's rounds: epoch_budget in spec.json).
            "epochs": len(metrics), "epoch_budget": record.get("epoch_budget"),
            "end_note": done.get("end_note") if done else None,
            "seconds": done.get("seconds") if done else None,
            "epoch_seconds": [round(m.get("seconds", float("nan")), 3) for m in metrics],
            "test_acc_last_epoch": metrics[-1].get("test_acc") if metrics else None,
            "resumed_from": done.get("resumed_from") if done else None,
        })
    return trials


def run_command(args, sizes, data_root: Path, results: Path, methods) -> list[str]:
    return [*BENCH, "run", "--dataset", "cifar10", "--data-root", str(data_root), "--methods", ",".join(methods),
            "--noise", "sym:0.4", "--seeds", "1", "--epochs", "3", "--results", str(results),
            "--device", args.device, *sizes["run_args"]]


def make_data(step: Step, sizes, work: Path) -> Path:
    data_root = work / "data"
    if not (data_root / "cifar-10-batches-py" / "batches.meta").exists():
        started = time.monotonic()
        write_synthetic_cifar10(data_root, sizes["cifar_train"], sizes["cifar_test"])
        step.results["data_written_s"] = round(time.monotonic() - started, 2)
    step.results["data"] = f"synthetic CIFAR-10 release, {sizes['cifar_train']:,} train / {sizes['cifar_test']:,} test"
    return data_root


def step_trainer(step: Step, args, sizes, work: Path) -> None:
    data_root = make_data(step, sizes, work)
    results = work / "runs-all"
    record = step.run(run_command(args, sizes, data_root, results, METHODS))
    trials = read_trials(results)
    step.results["trials"] = trials
    step.results["run_memory"] = record["memory"]
    missing = set(METHODS) - {t["method"] for t in trials}
    for t in trials:
        # Done, with every epoch of its budget (3, or a method's own multiple of 3) -- or fewer when
        # its own stopping rule ended it, which done.json's end_note says.
        stopped_early = (t["end_note"] or "").startswith("stopped early")
        if t["state"] != "done" or not (t["epochs"] == t["epoch_budget"] or stopped_early):
            step.problems.append(f"{t['method']}: {t['state']} with {t['epochs']} epochs of its "
                                 f"{t['epoch_budget']}-epoch budget")
    if missing:
        step.problems.append(f"no trial directory for {', '.join(sorted(missing))}")
    if step.time_left() <= 1:
        return
    table = step.run([*BENCH, "table", "--results", str(results)])
    step.results["table"] = table["stdout"].strip()
    if step.time_left() <= 1:
        return
    verify = step.run([*BENCH, "verify", "--results", str(results)])
    step.results["verify"] = verify["stdout"].strip()


def step_resume(step: Step, args, sizes, work: Path) -> None:
    data_root = make_data(step, sizes, work)
    results = work / "runs-resume"
    cmd = run_command(args, sizes, data_root, results, ["standard"])
    proc, record = step.start(cmd)
    log(f"  $ {record['command']}  (to be killed after its first checkpoint)")
    # Killed once metrics.jsonl has a line AND checkpoint.pt exists: the trainer appends the
    # metrics line before it writes the checkpoint (bench/trainer/loop.py), and a kill in between
    # resumes -- by design -- from epoch 0, which would not show a resume.
    killed_at = None
    while step.time_left() > 1 and proc.poll() is None:
        metrics = next(iter(results.glob("*/metrics.jsonl")), None)
        if metrics is not None and (metrics.parent / "checkpoint.pt").exists():
            lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
            if lines:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_at = len(lines)
                break
        time.sleep(0.05)
    step.finish(record, killed=killed_at is not None)
    step.results["killed_after_epochs"] = killed_at
    log(f"    killed after {killed_at} epoch(s), {record['seconds']:.1f} s" if killed_at else
        f"    NOT killed: exit {record['returncode']} after {record['seconds']:.1f} s")
    if killed_at is None:
        step.problems.append(f"the first run ended (exit {record['returncode']}) or ran out of time before it "
                             "could be killed after a checkpoint")
        return
    if killed_at >= 3:
        step.problems.append("the trial had finished every epoch before the kill: nothing left to resume")
    step.run(cmd)
    trials = read_trials(results)
    step.results["trials"] = trials
    trial = trials[0] if trials else None
    if trial is None or trial["state"] != "done" or trial["epochs"] != 3:
        step.problems.append(f"after the rerun the trial is {trial and trial['state']} with "
                             f"{trial and trial['epochs']} epochs, expected done with 3")
    elif not (trial["resumed_from"] or 0) >= 1:
        step.problems.append(f"done.json says resumed_from {trial['resumed_from']}, expected >= 1")


def fashion_mnist_present() -> bool:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return any(all((folder / name).exists() or (folder / f"{name}.gz").exists() for name in names)
               for folder in (FASHION_DATA_ROOT / "FashionMNIST" / "raw", Path("/usr/share/datasets/fashion-mnist")))


def step_fashion(step: Step, args, sizes, work: Path) -> None:
    """Real Fashion-MNIST through `bench run`: standard and Co-teaching, one seed, each epoch timed."""
    if not fashion_mnist_present():
        step.problems.append(f"no real Fashion-MNIST in {FASHION_DATA_ROOT / 'FashionMNIST' / 'raw'} or "
                             f"/usr/share/datasets/fashion-mnist: {FASHION_HOW_TO}")
        return
    results = work / "runs-fashion"
    record = step.run([*BENCH, "run", "--dataset", "fashion-mnist", "--data-root", str(FASHION_DATA_ROOT),
                       "--methods", "standard,coteaching", "--seeds", "1", "--results", str(results),
                       "--device", args.device, *sizes["fashion_args"]])
    trials = read_trials(results)
    step.results["command_args"] = sizes["fashion_args"]
    step.results["trials"] = trials
    step.results["run_memory"] = record["memory"]
    full_epochs = 150 if "causalnl-paper" in sizes["fashion_args"] else 50
    for trial in trials:
        seconds = trial["epoch_seconds"][1:] or trial["epoch_seconds"]  # the first epoch pays the warm-up
        if seconds:
            trial["hours_for_full_recipe"] = round(sum(seconds) / len(seconds) * full_epochs / 3600, 3)
        if trial["state"] != "done":
            step.problems.append(f"fashion-mnist {trial['method']}: {trial['state']} after {trial['epochs']} epochs")
        elif (trial["test_acc_last_epoch"] or 0) < 0.5:
            step.problems.append(f"fashion-mnist {trial['method']}: test accuracy {trial['test_acc_last_epoch']:.3f} "
                                 "after its epochs, below 0.5: not learning")
    if {t["method"] for t in trials} != {"standard", "coteaching"}:
        step.problems.append(f"fashion-mnist: trials for {sorted(t['method'] for t in trials)}, expected standard "
                             "and coteaching")
