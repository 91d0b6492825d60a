"""``python -m services.gateway``: one uvicorn worker on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from credit.heap import freeze_startup_objects
from credit.logging import configure_logging
from services.gateway.app import create_app
from services.gateway.edge import server_config
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_format)
    app = create_app(settings)
    freeze_startup_objects()
    # Header size and time limits, keep-alive and concurrency: services.gateway.edge.
    uvicorn.Server(server_config(app, settings)).run()


if __name__ == "__main__":
    main()
