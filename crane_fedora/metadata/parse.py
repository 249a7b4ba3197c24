"""Tell metadata formats apart by ``type`` + ``version`` and hand each to its parser."""

from __future__ import annotations

import json
from collections.abc import Callable

from crane_fedora.config import Config
from crane_fedora.metadata import jsonsteps
from crane_fedora.metadata.model import MetadataError, Repo, require
from crane_fedora.metadata.native import parse_native
from crane_fedora.metadata.pulp2 import parse_pulp2
from pulp_fedora_mirror.layout import METADATA_TYPE, READABLE_VERSIONS

#: ``json.loads`` in steps that let request threads run (a reload of a large file stalled them).
_loads = jsonsteps.loads
#: Files up to this size are parsed in one go (``json.loads``, no pauses): at most a few ms of
#: GIL, and stepping cost 3x the load time of 10,000 small repositories.
STEPPED_ABOVE = 1 << 20


def _no_pause() -> None:
    """A small file is parsed in one go."""


class SkipFile(Exception):
    """A valid file crane_fedora deliberately does not serve (Pulp 2 version 1)."""


def parse_bytes(data: bytes, path: str, config: Config) -> Repo:
    """Parse one metadata file; raise :class:`MetadataError` or :class:`SkipFile`."""
    big = len(data) > STEPPED_ABOVE
    try:
        doc = _loads(data) if big else json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(f"not valid JSON: {exc}") from None
    try:
        return _parse_doc(doc, path, config, jsonsteps.pause if big else _no_pause)
    finally:
        if big and isinstance(doc, (dict, list)):
            jsonsteps.dismantle(doc)  # not one long free of the whole document (jsonsteps)


def _parse_doc(doc: object, path: str, config: Config, pause: Callable[[], None]) -> Repo:
    require(isinstance(doc, dict), "top level must be an object")
    assert isinstance(doc, dict)
    version = doc.get("version")
    if doc.get("type") == METADATA_TYPE:
        require(
            version in READABLE_VERSIONS and not isinstance(version, bool),
            f"type {METADATA_TYPE!r} needs version 5 or 6, got {version!r}",
        )
        return parse_native(doc, path, config, pause)
    require(
        isinstance(version, int) and not isinstance(version, bool), f"unknown metadata version {version!r}"
    )
    if version == 1:
        raise SkipFile("Pulp 2 version 1 metadata (v1 API) is not served")
    require(version in (2, 3, 4), f"unknown metadata version {version!r}")
    return parse_pulp2(doc, path, config)
