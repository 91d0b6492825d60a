"""``python -m services.ui``: the advisor dashboard on UI_HOST:UI_PORT (see settings.py)."""

from __future__ import annotations

import logging
import os

# Before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from services.ui.app import launch
from services.ui.settings import UISettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    launch(UISettings(), freeze_heap=True)


if __name__ == "__main__":
    main()
