"""Real signatures for the promote tests: a cosign-style ``.sig`` attachment and an atomic one.

- sigstore/cosign stores a manifest's signature as an OCI image manifest tagged
  ``sha256-<hex>.sig`` in the same registry repository, its layer the "simple signing" payload.
  :func:`push_cosign_signature` pushes exactly that to docker-registry with the registry API (what
  ``cosign sign`` does on the wire; the signature annotation is a throwaway value since nothing
  here verifies it).
- An "atomic" signature (containers/image simple signing, signed with gpg) uploaded through
  pulp-container's ``PUT /extensions/v2/<name>/signatures/<digest>`` becomes ``ManifestSignature``
  content; :func:`atomic_signature` makes one with a throwaway gpg key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"


def cosign_tag(digest: str) -> str:
    """``sha256:<hex>`` → ``sha256-<hex>.sig``."""
    return digest.replace(":", "-") + ".sig"


def simple_signing_payload(reference: str, digest: str) -> bytes:
    """The containers "simple signing" JSON both cosign and atomic signatures sign."""
    doc = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "atomic container signature",
        },
        "optional": {"creator": "pulp_fedora_mirror tests"},
    }
    return json.dumps(doc, sort_keys=True).encode()


def _put_blob(session: requests.Session, base: str, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = session.post(f"{base}/v2/{name}/blobs/uploads/", timeout=30)
    r.raise_for_status()
    location = r.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    r = session.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    r.raise_for_status()
    return digest


def push_cosign_signature(registry_url: str, name: str, digest: str) -> str:
    """Push a cosign-style signature of ``digest`` to ``name:sha256-<hex>.sig``; its digest."""
    s = requests.Session()
    payload = simple_signing_payload(f"{registry_url.split('://', 1)[1]}/{name}", digest)
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": _put_blob(s, registry_url, name, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": COSIGN_PAYLOAD,
                "digest": _put_blob(s, registry_url, name, payload),
                "size": len(payload),
                "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ-not-verified-here"},
            }
        ],
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    r = s.put(
        f"{registry_url}/v2/{name}/manifests/{cosign_tag(digest)}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    r.raise_for_status()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def atomic_signature(home: Path, reference: str, digest: str) -> dict[str, object]:
    """Body for pulp-container's signature PUT: the payload gpg-signed (not compressed)."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    listed = subprocess.run([*gpg, "--list-secret-keys"], capture_output=True, text=True, check=True)
    if "sec" not in listed.stdout:
        subprocess.run(
            [*gpg, "--quick-gen-key", "Promote Test <promote@example.org>", "ed25519", "sign", "never"],
            capture_output=True,
            check=True,
        )
    signed = subprocess.run(
        [*gpg, "--compress-algo", "none", "--sign", "--output", "-"],
        input=simple_signing_payload(reference, digest),
        capture_output=True,
        check=True,
    ).stdout
    return {
        "schemaVersion": 2,
        "type": "atomic",
        "name": f"{digest}@{hashlib.sha256(signed).hexdigest()[:32]}",
        "content": base64.b64encode(signed).decode(),
    }
