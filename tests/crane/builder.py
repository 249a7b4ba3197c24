"""Build valid native version 5 (6 with artifacts or signatures) metadata for tests: real digests."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from pulp_fedora_mirror.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

MASTER = "https://dl.example.org/pub/containers/"
MIRROR = "https://download.example.org/pub/containers/"
OLD = 1_000_000_000  # long settled
CONFIG_TYPES = {
    DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json",
    OCI_MANIFEST: "application/vnd.oci.image.config.v1+json",
}
LAYER_TYPES = {
    DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
    OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip",
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Native:
    """A native repository under construction."""

    def __init__(
        self, name: str, *, master: str = MASTER, mirror: str | None = MIRROR, protected: bool = False
    ) -> None:
        self.name = name
        self.master = master
        self.mirror = mirror
        self.protected = protected
        self.tags: dict[str, str] = {}
        self.manifests: dict[str, dict] = {}
        self.blobs: dict[str, dict] = {}
        self.version = 5

    def image(self, seed: str, media_type: str = OCI_MANIFEST, published: float = OLD) -> str:
        config = f"config-{self.name}-{seed}".encode()
        layer = f"layer-{self.name}-{seed}".encode() * 3
        cfg_d, layer_d = sha(config), sha(layer)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {"mediaType": CONFIG_TYPES[media_type], "digest": cfg_d, "size": len(config)},
                "layers": [{"mediaType": LAYER_TYPES[media_type], "digest": layer_d, "size": len(layer)}],
            },
            indent=3,
        )
        digest = sha(body.encode())
        self.manifests[digest] = {
            "mediaType": media_type,
            "size": len(body.encode()),
            "body": body,
            "blobs": [cfg_d, layer_d],
        }
        self.blobs[cfg_d] = {"size": len(config), "published": published}
        self.blobs[layer_d] = {"size": len(layer), "published": published}
        return digest

    def index(self, children: list[tuple[str, str, str | None]], media_type: str = OCI_INDEX) -> str:
        """``children``: (digest, architecture, variant) for os linux."""
        entries = []
        for digest, arch, variant in children:
            platform = {"architecture": arch, "os": "linux"}
            if variant:
                platform["variant"] = variant
            entries.append(
                {
                    "digest": digest,
                    "mediaType": self.manifests[digest]["mediaType"],
                    "size": self.manifests[digest]["size"],
                    "platform": platform,
                }
            )
        body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=3)
        digest = sha(body.encode())
        self.manifests[digest] = {
            "mediaType": media_type,
            "size": len(body.encode()),
            "body": body,
            "manifests": entries,
        }
        return digest

    def artifact(
        self,
        seed: str,
        subject: str,
        *,
        artifact_type: str | None = None,
        config_type: str = "application/vnd.oci.empty.v1+json",
        annotations: dict[str, str] | None = None,
        metadata_artifact_type: bool = True,
    ) -> str:
        """An OCI 1.1 artifact manifest whose ``subject`` is ``subject`` (version-6 keys set).

        ``metadata_artifact_type=False`` leaves ``artifactType`` out of the metadata entry (a
        reader must then fall back to the body, as the image spec says).
        """
        config = b"{}"
        layer = f"artifact-{self.name}-{seed}".encode()
        subj = self.manifests[subject]
        body_doc: dict = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifact_type:
            body_doc["artifactType"] = artifact_type
        body_doc["config"] = {"mediaType": config_type, "digest": sha(config), "size": len(config)}
        body_doc["layers"] = [
            {"mediaType": "application/octet-stream", "digest": sha(layer), "size": len(layer)}
        ]
        body_doc["subject"] = {"mediaType": subj["mediaType"], "digest": subject, "size": subj["size"]}
        if annotations:
            body_doc["annotations"] = annotations
        body = json.dumps(body_doc, indent=3)
        digest = sha(body.encode())
        entry = {
            "mediaType": OCI_MANIFEST,
            "size": len(body.encode()),
            "body": body,
            "blobs": [sha(config), sha(layer)],
            "subject": body_doc["subject"],
        }
        if metadata_artifact_type:
            entry["artifactType"] = artifact_type or config_type
        if annotations:
            entry["annotations"] = annotations
        self.manifests[digest] = entry
        self.blobs[sha(config)] = {"size": len(config), "published": OLD}
        self.blobs[sha(layer)] = {"size": len(layer), "published": OLD}
        self.version = 6
        return digest

    def sign(self, digest: str, *signatures: bytes) -> Native:
        """Version 6: simple-signing signature files of ``digest`` (index from 1)."""
        self.manifests[digest]["signatures"] = [
            {"index": n, "content": base64.b64encode(s).decode()} for n, s in enumerate(signatures, 1)
        ]
        self.version = 6
        return self

    def tag(self, tag: str, digest: str) -> Native:
        self.tags[tag] = digest
        return self

    def doc(self) -> dict:
        return {
            "type": "fedora-mirror",
            "version": self.version,
            "repo-registry-id": self.name,
            "repository": self.name.replace("/", "-"),
            "protected": self.protected,
            "urls": {"master": self.master, "mirror": self.mirror},
            "tags": self.tags,
            "manifests": self.manifests,
            "blobs": self.blobs,
            "export": {"id": None, "source": "test", "exported": "2026-11-29T01:40:00Z"},
        }

    def write(self, data_dir: Path, relpath: str | None = None) -> Path:
        path = data_dir / (relpath or self.name + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(json.dumps(self.doc(), sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
        return path


def busybox() -> tuple[Native, dict[str, str]]:
    """The standard test repository: an OCI index (amd64 + arm64/v8), a Docker list, single images."""
    repo = Native("fedora/busybox")
    d = {}
    d["amd64"] = repo.image("amd64")
    d["arm64"] = repo.image("arm64")
    d["index"] = repo.index([(d["arm64"], "arm64", "v8"), (d["amd64"], "amd64", None)])
    d["d_amd64"] = repo.image("d-amd64", DOCKER_MANIFEST)
    d["d_s390x"] = repo.image("d-s390x", DOCKER_MANIFEST)
    d["list"] = repo.index([(d["d_s390x"], "s390x", None), (d["d_amd64"], "amd64", None)], DOCKER_LIST)
    d["single"] = repo.image("single", DOCKER_MANIFEST)
    d["fresh"] = repo.image("fresh", OCI_MANIFEST, published=4_000_000_000)  # far future: never settled
    d["noamd64"] = repo.index([(d["arm64"], "arm64", "v8")])
    repo.tag("latest", d["index"]).tag("40", d["index"]).tag("dockerlist", d["list"])
    repo.tag("single", d["single"]).tag("fresh", d["fresh"]).tag("noamd64", d["noamd64"])
    repo.tag("blobs", d["single"]).tag("manifests", d["single"]).tag("tags", d["single"])
    return repo, d


#: An anonymous client's catalog request (the DN header comes from an untrusted peer).
ANONYMOUS_CATALOG = {
    "PATH_INFO": "/v2/_catalog",
    "REQUEST_METHOD": "GET",
    "QUERY_STRING": "n=2",
    "HTTP_X_SSL_CLIENT_DN": "CN=a",
    "REMOTE_ADDR": "192.0.2.1",  # not a trusted proxy: anonymous
}


def protected_catalog(data_dir: Path, repos: int = 10_000) -> str:
    """``repos`` Pulp 2 repositories in 100 namespaces, the odd ones protected; return the config
    lines (rules for CN=a and any verified client) that go with them. Shared by
    tests/crane/test_security.py and benchmarks/hotpath_bench.py."""
    for i in range(repos):
        doc = {"version": 2, "repo-registry-id": f"ns{i % 100}/repo{i}", "repository": f"r{i}"}
        doc.update(url="https://cdn.example.com/x/", protected=i % 2 == 1)  # odd namespaces
        (data_dir / f"r{i}.json").write_text(json.dumps(doc))
    cfg = f"[registry]\npage_size_max = {2 * repos}\n"
    return cfg + "[protected]\ntrusted_proxies = 127.0.0.1\nallow =\n  ns1/* CN=a\n  ns3/* *\n"
