"""The reference for ``benchmarks.reload_bench``: crane with the parser it had before issue 13
item 7 (one ``json.loads`` per file). Benchmark use only: ``gunicorn benchmarks.reload_oneshot:application``.
"""

from __future__ import annotations

import json

from crane_fedora.metadata import parse

parse._loads = json.loads

from crane_fedora.wsgi import application  # noqa: E402  (after the swap, on purpose)

__all__ = ["application"]
