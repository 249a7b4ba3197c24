"""WSGI entry point: ``gunicorn crane_fedora.wsgi:application``.

A bad configuration prints one line naming the section/key and exits non-zero, instead of a
traceback in the server log.
"""

from __future__ import annotations

import logging
import sys

from crane_fedora.app import create_app
from crane_fedora.config import ConfigError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

try:
    application = create_app()
except ConfigError as exc:
    print(f"crane_fedora: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
