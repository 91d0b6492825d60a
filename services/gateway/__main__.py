"""``python -m services.gateway``: one uvicorn worker on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from credit.heap import freeze_startup_objects
from credit.logging import configure_logging
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_format)
    app = create_app(settings)
    freeze_startup_objects()
    # The access log is ours (structured, with route and key id); uvicorn's is off.
    uvicorn.run(app, host=settings.host, port=settings.port, workers=1,
                access_log=False, log_config=None)  # fmt: skip


if __name__ == "__main__":
    main()
