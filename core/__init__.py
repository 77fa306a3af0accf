"""noisybench's lowest floor: what every other part may import and which imports nothing of theirs.

    noisybench.core.errors    BenchError, the one exception for bad user input
    noisybench.core.seeding   derive_seed, seeds from names and numbers (no global RNG)
    noisybench.core.spec      TrialSpec, one trial as plain data, and the hash that names its directory
    noisybench.core.layout    the file names inside a trial directory and the trial states

Nothing here imports torch, numpy or another noisybench package, so `bench --help` and the
store's readers stay light.
"""

__version__ = "0.2.0"
