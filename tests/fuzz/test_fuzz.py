"""Each front door fuzzed for a short fixed budget (atheris, fixed seed): any finding fails the test.

A finding is an exception other than mailvoice's own errors, or one input over a CPU second (tests/fuzz/harness.py).
The long runs (a million executions) are made by hand with tests/fuzz/run.py; this keeps every change honest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUN = Path(__file__).resolve().parent / "run.py"
BUDGET = {"mime": 3000, "audio": 4000}
"""Executions per test run: about half a minute each on a shared 2-core machine."""


@pytest.mark.parametrize("kind", sorted(BUDGET))
def test_front_door_survives_a_short_fuzz_run(kind: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the dev extra: pip install -e '.[dev]'")
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            kind,
            str(corpus),
            f"-runs={BUDGET[kind]}",
            "-seed=1",
            "-timeout=60",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    found = sorted(p.name for p in artifacts.iterdir())
    assert proc.returncode == 0 and not found, f"fuzz finding ({found}):\n{tail}"
    executed = [line for line in tail.splitlines() if line.startswith("stat::number_of_executed_units:")]
    assert executed and int(executed[-1].split()[1]) >= BUDGET[kind], tail
    assert len(list(corpus.iterdir())) > 10, "the seed corpus was not written"


def test_a_finding_fails_the_run(tmp_path: Path) -> None:
    """The guard turns a foreign exception into a finding and lets mailvoice's own errors through."""
    sys.path.insert(0, str(RUN.parent))
    import harness

    from mailvoice.errors import CorruptAudioError

    def foreign(data: bytes) -> None:
        raise KeyError(data)

    def own(data: bytes) -> None:
        raise CorruptAudioError("bad")

    with pytest.raises(harness.Finding, match="KeyError escaped"):
        harness.guarded(foreign)(b"x")
    harness.guarded(own)(b"x")

    def slow(data: bytes) -> None:
        sum(range(10**8))

    with pytest.raises(harness.Finding, match="CPU"):
        harness.guarded(slow, limit=0.01)(b"x")
