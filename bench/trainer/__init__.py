"""The shared trainer: one trial, any method, CPU or GPU.

    device.py    the device, and one thread for input prep
    arithmetic.py  how it computes there (bf16 autocast on CUDA, memory format, fused optimisers)
    data.py      the training and test sets on the device, the validation split, crop + flip
    optim.py     the optimiser and its learning-rate schedule
    passes.py    an epoch's passes (the method's EpochPlan) as batches, and the method's optimisers
    meter.py     an epoch's metrics, summed on the device and read once
    evaluate.py  test and validation accuracy, overall and per class
    view.py      what a method's epoch hooks (epoch_plan, on_epoch_end) see of the trainer
    setup.py     a trial's data, noisy labels, recipe and method
    records.py   spec.json's provenance and the feature snapshots
    loop.py      the epoch loop (each epoch as its method plans it) with its checkpoints and resume
    trial.py     run_trial: one trial into the store, failures recorded -- what every launcher runs
    protocols.py the named recipes (torch-free: `bench --help` and `bench list` read them)
    arithmetic_flags.py  the command-line flags of the arithmetic (torch-free)

``run_trial`` is imported on first use, so that the torch-free modules above load without torch.
"""
__all__ = ["run_trial"]


def __getattr__(name: str):
    if name == "run_trial":
        from noisybench.bench.trainer.trial import run_trial

        return run_trial
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
