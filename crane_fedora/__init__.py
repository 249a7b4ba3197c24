"""crane_fedora: a read-only container registry front end serving exported metadata.

Successor of Pulp 2's Crane. It answers the registry API from metadata files alone (manifests
served from memory, blobs redirected to the mirror network) and imports nothing from Pulp or
Django, so it can run on small hosts next to a synced metadata directory.
"""

from __future__ import annotations

__all__ = ["ConfigError", "create_app"]


def __getattr__(name: str):  # lazy so that ``import crane_fedora`` stays cheap
    if name == "create_app":
        from crane_fedora.app import create_app

        return create_app
    if name == "ConfigError":
        from crane_fedora.config import ConfigError

        return ConfigError
    raise AttributeError(name)
