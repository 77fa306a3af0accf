"""Fixtures shared by several test files."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def one_cpu_thread():
    """Inline runs (in this process) and launched jobs (which inherit the environment) on one
    CPU thread: on the CPU a sum split over another number of threads rounds differently, and
    these tests compare their metrics bit for bit."""
    import torch

    before_env, before = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    if before_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = before_env


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """results/integrity.warn says each line once per process; each test is its own 'process', so a
    test that expects a warning does not depend on which tests ran before it."""
    from noisybench.results import integrity

    monkeypatch.setattr(integrity, "_warned", set())
