"""``make bench``'s harness: results merged into artifacts/bench.json, each with the speed
of the machine around it (the VM's speed drifts, and the figures with it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from credit import bench
from credit.settings import PlatformSettings


def test_results_are_merged_and_record_the_machine_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = PlatformSettings(artifacts_dir=tmp_path)
    seen: list[Path] = []

    def tiny(_: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
        seen.append(work)
        return {"value": clients}

    monkeypatch.setitem(bench.BENCHMARKS, "first", tiny)
    monkeypatch.setitem(bench.BENCHMARKS, "second", tiny)
    bench.run_benchmarks(settings, only=["first"], clients=3)
    report = bench.run_benchmarks(settings, only=["second"], clients=4)

    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved == report
    assert saved["results"]["first"]["value"] == 3  # a later run keeps the others
    assert saved["results"]["second"]["value"] == 4
    for result in saved["results"].values():
        assert result["python_loop_s"]["before"] > 0 and result["python_loop_s"]["after"] > 0
    assert "python_loop_s.before" in (tmp_path / "bench.md").read_text()
    assert not any(work.exists() for work in seen)  # work folders are removed


def test_unknown_benchmarks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown benchmark"):
        bench.run_benchmarks(PlatformSettings(artifacts_dir=tmp_path), only=["nope"])


def test_service_cpu_is_read_from_the_pid_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The REST benchmark's CPU per request comes from the services' pid files and /proc:
    a process that burns CPU shows it as user time; a missing pid file is left out."""
    import os
    import time

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".run").mkdir()
    (tmp_path / ".run" / "gateway.pid").write_text(str(os.getpid()))
    before = bench._service_cpu_seconds()
    started = time.process_time()
    # Pure Python (user time, no system calls) until 0.3 s of CPU are spent: a fixed amount
    # of work took under 0.1 s on a quiet machine, too little for /proc's 10 ms ticks.
    while time.process_time() - started < 0.3:
        sum(i * i for i in range(100_000))
    burnt = time.process_time() - started
    after = bench._service_cpu_seconds()
    assert set(before) == set(after) == {"gateway"}  # no scoring.pid: not measured
    user = after["gateway"][0] - before["gateway"][0]
    assert user >= burnt / 2, (user, burnt)
