"""Build small, real OCI image layouts on disk for the tests (real files, real sha256)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from pulp_fedora_mirror import mediatypes

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LayoutBuilder:
    """Writes blobs as they are added; :meth:`write` writes ``oci-layout`` and ``index.json``."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        self.index: list[dict[str, Any]] = []

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])

    def add_blob(self, data: bytes, media_type: str, *, store: bool = True) -> dict[str, Any]:
        digest = sha(data)
        if store:
            with open(self.blob_path(digest), "wb") as fh:
                fh.write(data)
            os.chmod(self.blob_path(digest), 0o644)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def add_manifest(self, doc: dict[str, Any], media_type: str) -> dict[str, Any]:
        body = json.dumps(doc, indent=3).encode()
        return self.add_blob(body, media_type)

    def image(
        self,
        seed: str,
        *,
        docker: bool = False,
        layers: int = 2,
        foreign: bool = False,
        platform: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        cfg_type, layer_type = (DOCKER_CONFIG, DOCKER_LAYER) if docker else (OCI_CONFIG, OCI_LAYER)
        config = self.add_blob(json.dumps({"seed": seed, "os": "linux"}).encode(), cfg_type)
        descs = [self.add_blob(f"layer {seed} {i}\n".encode() * (20 + i), layer_type) for i in range(layers)]
        if foreign:
            descs.append(self.add_blob(f"foreign {seed}".encode(), DOCKER_FOREIGN, store=False))
        mt = mediatypes.DOCKER_MANIFEST if docker else mediatypes.OCI_MANIFEST
        desc = self.add_manifest({"schemaVersion": 2, "mediaType": mt, "config": config, "layers": descs}, mt)
        if platform:
            desc["platform"] = platform
        return desc

    def list_(self, children: list[dict[str, Any]], *, docker: bool = False) -> dict[str, Any]:
        mt = mediatypes.DOCKER_LIST if docker else mediatypes.OCI_INDEX
        return self.add_manifest({"schemaVersion": 2, "mediaType": mt, "manifests": children}, mt)

    def schema1(self, seed: str) -> dict[str, Any]:
        doc = {"schemaVersion": 1, "name": "old", "tag": seed, "fsLayers": [], "history": []}
        return self.add_manifest(doc, mediatypes.DOCKER_SCHEMA1_SIGNED)

    def tag(self, desc: dict[str, Any], tag: str, *, containerd: str | None = None) -> None:
        entry = {k: desc[k] for k in ("mediaType", "digest", "size")}
        if containerd:
            entry["annotations"] = {"io.containerd.image.name": containerd}
        else:
            entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(entry)

    def write(self) -> str:
        with open(os.path.join(self.path, "oci-layout"), "w") as fh:
            json.dump({"imageLayoutVersion": "1.0.0"}, fh)
        with open(os.path.join(self.path, "index.json"), "w") as fh:
            json.dump({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": self.index}, fh)
        return self.path


def standard_layout(path: str, *, seed: str = "a") -> dict[str, dict[str, Any]]:
    """Docker schema 2, Docker list, OCI manifest, OCI index with an attestation, schema 1.

    Returns the descriptors by role so tests can name what they check.
    """
    b = LayoutBuilder(path)
    amd = b.image(f"{seed}-amd64", platform={"architecture": "amd64", "os": "linux"})
    arm = b.image(f"{seed}-arm64", platform={"architecture": "arm64", "os": "linux", "variant": "v8"})
    att = b.image(f"{seed}-att", layers=1, platform={"architecture": "unknown", "os": "unknown"})
    att["annotations"] = {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd["digest"],
    }
    index = b.list_([amd, arm, att])
    d1 = b.image(f"{seed}-d1", docker=True, platform={"architecture": "amd64", "os": "linux"})
    d2 = b.image(f"{seed}-d2", docker=True, platform={"architecture": "s390x", "os": "linux"})
    dlist = b.list_([d1, d2], docker=True)
    docker = b.image(f"{seed}-docker", docker=True, foreign=True)
    oci = b.image(f"{seed}-oci")
    old = b.schema1(seed)
    b.tag(index, "latest")
    b.tag(index, "41")
    b.tag(dlist, "dlist")
    b.tag(docker, "docker", containerd="registry.example.org/fedora/x:docker")
    b.tag(oci, "oci")
    b.tag(old, "old")
    b.write()
    return {
        "index": index,
        "amd": amd,
        "arm": arm,
        "att": att,
        "dlist": dlist,
        "d1": d1,
        "d2": d2,
        "docker": docker,
        "oci": oci,
        "old": old,
    }
