"""The names of the files in a trial directory and the states a trial can be in.

One place for them, so that the trainer that writes a trial, the store that reads it and the
launchers that report on it cannot disagree about what a file is called.

    runs/<dataset>_<method>_<noise>_s<seed>_<hash>/
        spec.json            the TrialSpec (+ the resolved recipe, hyperparameters, noise record)
        metrics.jsonl        one JSON line per finished epoch, append-only
        checkpoint.pt        the last epoch's state, for resuming
        done.json            written last, atomically: the trial is finished
        failed.json          the traceback of a trial that raised
        features_e{E}.npz    penultimate features after epoch E (`bench run --save-features`)
"""

SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
# Penultimate-feature snapshots, one file per listed epoch; `bench plot tsne` reads them.
FEATURE_SNAPSHOT_NAME = "features_e{epoch}.npz"
# Where the submitit launchers keep their job folders and submission records, under the results root.
SUBMISSION_DIR = ".submitit"

DONE, FAILED, INCOMPLETE, MISSING = "done", "failed", "incomplete", "missing"
# What the trial function returns for a trial another live process holds (it left the trial alone).
HELD = "held"
# ... and for a trial whose lease another process took while this one was suspended (its heartbeat
# went stale where locks are not shared): it stopped without touching the trial, which is the
# other process's now.  Neither done nor failed here.
HANDED_OVER = "handed over"
