"""The launchers' names and the validated launcher options of `bench run` (slurm/commands.py
builds them from argv)."""
from __future__ import annotations

from dataclasses import dataclass

# The `--launcher` choices: inline (bench/inline.py), local and slurm (slurm/launcher.py).
LAUNCHERS = ("inline", "local", "slurm")

DEFAULT_SLURM_TIME_MIN = 60
# A local process has no scheduler limit to respect: only --time stops it.
LOCAL_NO_LIMIT_MIN = 30 * 24 * 60
DEFAULT_MAX_REQUEUES = 3
DEFAULT_LOCAL_WORKERS_ON_CPU = 2


@dataclass(frozen=True)
class LauncherOptions:
    """Validated `bench run` launcher options: which launcher, and its options."""

    launcher: str = "inline"  # one of LAUNCHERS
    trials_per_gpu: int = 1  # inline: K trials at once on each GPU (`--trials-per-gpu`)
    wait: bool = True
    # local and slurm (submitit) only, from here on
    workers: int | None = None  # local; None: one per GPU, else DEFAULT_LOCAL_WORKERS_ON_CPU
    time_min: int | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    folder: str | None = None  # submitit's pickles and logs; None: <results>/.submitit
    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    array_parallelism: int | None = None
    trials_per_job: int = 1
    sbatch_options: tuple[tuple[str, str], ...] = ()  # --slurm KEY=VALUE, KEY without "setup"
    setup_lines: tuple[str, ...] = ()  # --slurm setup=LINE

    def slurm_parameters(self) -> dict:
        """SlurmExecutor.update_parameters() arguments."""
        params = {
            "job_name": "noisybench",
            "time": self.time_min or DEFAULT_SLURM_TIME_MIN,
            "partition": self.partition,
            "gpus_per_task": self.gpus_per_task,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "array_parallelism": self.array_parallelism,
            "additional_parameters": dict(self.sbatch_options) or None,
            "setup": list(self.setup_lines) or None,
        }
        return {k: v for k, v in params.items() if v is not None}
