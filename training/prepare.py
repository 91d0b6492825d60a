"""``make data``: real Kaggle files or the synthetic set -> typed tables -> quality summary.

The typed tables carry a stamp naming what they were made from, so a second run with the
same source reuses them instead of regenerating.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog

from credit.settings import PlatformSettings
from training.loader import convert
from training.quality import summarize

log = structlog.get_logger(__name__)
STAMP_FILE = "SOURCE.json"


def source_spec(settings: PlatformSettings) -> dict[str, Any]:
    if settings.data_dir is not None:
        return {"kind": "kaggle", "path": str(Path(settings.data_dir).resolve())}
    return {"kind": "synthetic", "clients": settings.synthetic_clients, "seed": settings.seed}


def current_stamp(tables_dir: Path) -> dict[str, Any] | None:
    stamp = Path(tables_dir) / STAMP_FILE
    return json.loads(stamp.read_text()) if stamp.is_file() else None


def prepare_tables(
    settings: PlatformSettings, *, force: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Make sure ``tables_dir`` holds the typed tables of the configured source."""
    spec = source_spec(settings)
    tables_dir = Path(settings.tables_dir)
    if not force and current_stamp(tables_dir) == spec:
        log.info("tables_reused", tables_dir=str(tables_dir), source=spec)
        return summarize(tables_dir)
    if spec["kind"] == "synthetic":
        from training.synthetic import generate

        source = Path(settings.raw_dir)
        generate(
            source, n_clients=settings.synthetic_clients, seed=settings.seed, progress=progress
        )
    else:
        source = Path(spec["path"])
    stamp = tables_dir / STAMP_FILE
    stamp.unlink(missing_ok=True)  # the tables are about to change: no stale claim
    convert(source, tables_dir, progress=progress)
    summary = summarize(tables_dir)
    stamp.write_text(json.dumps(spec) + "\n")
    return summary
