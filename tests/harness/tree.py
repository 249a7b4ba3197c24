"""Write a mirror tree and native metadata for the fixture images, straight from the contract.

Why a second writer next to the exporter: crane_fedora's real-client tests and the mirror-lag
scenario need a tree whose every byte is known in advance, independent of the exporter (so a bug
there cannot hide a bug in crane), and the exporter's own output can be compared with this one.
It follows ``docs/layout.md`` §2 and §4 only (paths from :mod:`pulp_fedora_mirror.layout`); it
takes no lock, writes no file list and does no atomic renames (tests own the directory).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from fixtures.build_images import NAMESPACE, FixtureImage
from pulp_fedora_mirror import layout


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o644)


def metadata_for(
    image: FixtureImage,
    *,
    master_url: str,
    mirror_url: str | None,
    namespace: str = NAMESPACE,
    published: int,
    protected: bool = False,
) -> dict[str, object]:
    """The native metadata document of one fixture image as its own repository."""
    manifests: dict[str, object] = {}
    for d, m in image.manifests.items():
        entry: dict[str, object] = {"mediaType": m.media_type, "size": m.size, "body": m.body.decode("utf-8")}
        if m.children:
            entry["manifests"] = json.loads(m.body)["manifests"]
        else:
            entry["blobs"] = list(m.blobs)
        manifests[d] = entry
    return {
        "type": layout.METADATA_TYPE,
        "version": layout.METADATA_VERSION,
        "repo-registry-id": image.repo(namespace),
        "repository": f"fixture-{image.name}",
        "protected": protected,
        "urls": {"master": master_url, "mirror": mirror_url},
        "tags": {image.tag: image.digest},
        "manifests": manifests,
        "blobs": {d: {"size": b.size, "published": published} for d, b in image.blobs.items()},
        "export": {"id": None, "source": image.oci_layout or "fixtures", "exported": None},
    }


def write_tree(
    images: Mapping[str, FixtureImage] | Iterable[FixtureImage],
    root: str | os.PathLike[str],
    metadata_dir: str | os.PathLike[str] | None = None,
    *,
    master_url: str = "",
    mirror_url: str | None = None,
    namespace: str = NAMESPACE,
    published: int | None = None,
    blobs: bool = True,
) -> dict[str, Path]:
    """Write blobs and manifests of ``images`` under ``root`` and (with ``metadata_dir``) one
    ``<namespace>/<name>.json`` per image.

    ``published`` (Unix seconds, default now) goes into every blob entry: use ``0`` for "settled
    long ago" (crane redirects to the mirror) and ``now`` with a large ``settle_seconds`` for
    "just published" (crane redirects to the master). ``blobs=False`` writes manifests only: a
    mirror that has not caught up yet. Returns ``{name: metadata path}``.
    """
    items = list(images.values()) if isinstance(images, Mapping) else list(images)
    rootp = Path(root)
    when = int(time.time()) if published is None else published
    out: dict[str, Path] = {}
    for image in items:
        if blobs:
            for d, b in image.blobs.items():
                p = rootp / layout.blob_path(d)
                if not p.exists():
                    _write(p, b.data)
        for d, m in image.manifests.items():
            p = rootp / layout.manifest_path(d)
            if not p.exists():
                _write(p, m.body)
        if metadata_dir is not None:
            doc = metadata_for(
                image, master_url=master_url, mirror_url=mirror_url, namespace=namespace, published=when
            )
            mp = Path(metadata_dir) / layout.metadata_relpath(image.repo(namespace))
            _write(mp, json.dumps(doc, sort_keys=True, indent=1).encode("utf-8"))
            out[image.name] = mp
    for dirpath, _dirs, _files in os.walk(rootp):
        os.chmod(dirpath, 0o755)
    return out
