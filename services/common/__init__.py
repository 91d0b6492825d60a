"""What the gRPC services share: typed errors, the server bootstrap, metrics, settings."""

# Imported before anything imports Feast. Importing Feast sets PROMETHEUS_MULTIPROC_DIR for
# the whole process (feast.metrics, meant for its gunicorn feature server), and
# prometheus_client picks its value class when first imported: imported after Feast, every
# metric update of these single-process services went through an mmap'd file (~3 % of the
# scoring service's CPU). Imported first, metrics stay plain in-memory values.
import prometheus_client.values  # noqa: F401
