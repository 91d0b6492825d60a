"""Where a batch job's Prometheus metrics go: the Pushgateway when one is named, else a text
file beside the job's report (the node exporter's textfile collector, or a person, reads it).
Shared by the drift and performance jobs, so that both follow one rule."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile


def publish(
    registry: CollectorRegistry, *, job: str, pushgateway_url: str | None, textfile: Path
) -> dict[str, str]:
    """Push or write ``registry``; returns where it went (``pushed_to`` or ``prom_file``),
    for the job's report."""
    if pushgateway_url:
        push_to_gateway(pushgateway_url, job=job, registry=registry)
        return {"pushed_to": pushgateway_url}
    write_to_textfile(str(textfile), registry)
    return {"prom_file": str(textfile)}
