"""Every measured number in the READMEs comes from `make readme-numbers` (benchmarks/readme_numbers.py):
each marked block is one of the script's blocks, shows the command that measures it, and no
mean ± std of a measurement stands outside a block, where it could drift from the rest."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import readme_numbers  # noqa: E402

MEASURED_READMES = ["README.md", "methods/README.md", "slurm/README.md", "noise/README.md", "datasets/README.md"]
MEAN_STD = re.compile(r"\d+\.\d+ ± \d+\.\d+")


def test_every_marked_block_is_a_block_of_the_script_and_shows_its_command():
    assert readme_numbers.check() == []
    # and the check does catch a block missing from the READMEs, or showing another command
    missing = readme_numbers.Block("no-such-block", "README.md", sweep="--methods standard")
    assert "no-such-block" in readme_numbers.check([missing])[0]
    demo_moved = readme_numbers.Block("demo", "README.md", sweep="--methods gce --noise sym:0.9 --seeds 1")
    assert any("does not show its command" in p for p in readme_numbers.check([demo_moved]))


@pytest.mark.parametrize("name", MEASURED_READMES)
def test_no_measured_mean_and_std_outside_a_generated_block(name):
    text = readme_numbers.MARKER.sub("", (REPO / name).read_text())
    assert MEAN_STD.findall(text) == []
