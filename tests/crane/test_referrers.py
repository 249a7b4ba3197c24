"""OCI 1.1 referrers API, checked against the distribution specification's own examples.

distribution-spec v1.1 "Listing Referrers": ``GET /v2/<name>/referrers/<digest>`` answers 200 with
an image index (``application/vnd.oci.image.index.v1+json``) whose ``manifests`` are descriptors of
every manifest with that ``subject`` (``artifactType`` and ``annotations`` copied); an empty index,
never a 404, when there are none; ``?artifactType=`` filters and is acknowledged with
``OCI-Filters-Applied: artifactType``; a syntactically invalid digest is a 400. No referrers client
is installable here (signatures.md §3), so the spec's example documents are the oracle.
"""

from __future__ import annotations

import pytest

from pulp_fedora_mirror.mediatypes import OCI_INDEX, OCI_MANIFEST

from .builder import busybox
from .test_native import assert_error

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"
#: The annotations of the spec's example response.
SBOM_ANN = {"org.opencontainers.image.created": "2022-01-01T14:42:55Z", "org.example.sbom.format": "json"}
SIG_ANN = {
    "org.opencontainers.image.created": "2022-01-01T07:21:33Z",
    "org.example.signature.fingerprint": "abcd",
}


@pytest.fixture
def refs(data_dir):
    native, d = busybox()
    d["sbom"] = native.artifact("sbom", d["amd64"], artifact_type=SBOM, annotations=SBOM_ANN)
    d["sig"] = native.artifact("sig", d["amd64"], artifact_type=SIG, annotations=SIG_ANN)
    # no artifactType in the body: the descriptor carries config.mediaType (image-spec rule), and
    # crane derives it even when the metadata entry lacks the key
    d["plain"] = native.artifact(
        "plain",
        d["index"],
        config_type="application/vnd.example.config.v1+json",
        metadata_artifact_type=False,
    )
    native.write(data_dir)
    return native, d


def descriptor(native, digest: str, artifact_type: str, annotations: dict | None) -> dict:
    entry = native.manifests[digest]
    desc = {"mediaType": OCI_MANIFEST, "size": entry["size"], "digest": digest, "artifactType": artifact_type}
    if annotations:
        desc["annotations"] = annotations
    return desc


def test_spec_example_response(make_app, refs):
    native, d = refs
    c = make_app().test_client()
    r = c.get(f"/v2/fedora/busybox/referrers/{d['amd64']}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in r.headers
    doc = r.json
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == OCI_INDEX
    expected = [descriptor(native, d["sbom"], SBOM, SBOM_ANN), descriptor(native, d["sig"], SIG, SIG_ANN)]
    assert sorted(doc["manifests"], key=lambda x: x["digest"]) == sorted(expected, key=lambda x: x["digest"])
    # each descriptor's size/digest fetches the referrer itself
    for desc in doc["manifests"]:
        m = c.get(f"/v2/fedora/busybox/manifests/{desc['digest']}", headers={"Accept": OCI_MANIFEST})
        assert m.status_code == 200 and len(m.data) == desc["size"]
        assert m.json["subject"]["digest"] == d["amd64"]


def test_spec_example_filtered(make_app, refs):
    native, d = refs
    c = make_app().test_client()
    r = c.get(f"/v2/fedora/busybox/referrers/{d['amd64']}?artifactType={SBOM}")
    assert r.status_code == 200
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert r.json["manifests"] == [descriptor(native, d["sbom"], SBOM, SBOM_ANN)]
    r = c.get(f"/v2/fedora/busybox/referrers/{d['amd64']}?artifactType=application/vnd.none")
    assert r.status_code == 200 and r.json["manifests"] == []
    assert r.headers["OCI-Filters-Applied"] == "artifactType"


def test_artifact_type_falls_back_to_config_media_type(make_app, refs):
    native, d = refs
    r = make_app().test_client().get(f"/v2/fedora/busybox/referrers/{d['index']}")
    assert r.json["manifests"] == [
        descriptor(native, d["plain"], "application/vnd.example.config.v1+json", None)
    ]


def test_no_referrers_is_an_empty_index_not_404(make_app, refs):
    _, d = refs
    c = make_app().test_client()
    for digest in (d["arm64"], "sha256:" + "0" * 64, "sha512:" + "0" * 128):
        r = c.get(f"/v2/fedora/busybox/referrers/{digest}")
        assert r.status_code == 200, digest
        assert r.json == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    head = c.head(f"/v2/fedora/busybox/referrers/{d['amd64']}")
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) > 100


def test_version5_repository_and_pulp2_have_empty_referrers(make_app, repo, pulp2_dir):
    c = make_app().test_client()
    _, d = repo
    assert c.get(f"/v2/fedora/busybox/referrers/{d['amd64']}").json["manifests"] == []
    r = c.get(f"/v2/legacy/schema2/referrers/sha256:{'1' * 64}")
    assert r.status_code == 200 and r.json["manifests"] == []


def test_referrers_errors(make_app, refs):
    _, d = refs
    c = make_app().test_client()
    assert_error(c.get("/v2/fedora/busybox/referrers/latest"), 400, "DIGEST_INVALID")
    assert_error(c.get("/v2/fedora/busybox/referrers/sha256:abc%0a"), 400, "DIGEST_INVALID")
    assert_error(c.get(f"/v2/Fedora/referrers/{d['amd64']}"), 400, "NAME_INVALID")
    assert_error(c.get(f"/v2/fedora/nothere/referrers/{d['amd64']}"), 404, "NAME_UNKNOWN")
    assert_error(c.delete(f"/v2/fedora/busybox/referrers/{d['amd64']}"), 405, "UNSUPPORTED")


def test_referrers_snapshot_is_precomputed(make_app, refs):
    """Built once per metadata snapshot: the repository object already holds the map."""
    _, d = refs
    app = make_app()
    repo = app.extensions["crane_fedora"].store.index.repos["fedora/busybox"]
    assert {k: len(v) for k, v in repo.referrers.items()} == {d["amd64"]: 2, d["index"]: 1}


def test_protected_repository_as_for_manifests(make_app, data_dir):
    from .builder import Native

    secret = Native("secret/image", protected=True)
    image = secret.image("1")
    secret.tag("latest", image)
    secret.artifact("sbom", image, artifact_type=SBOM)
    secret.write(data_dir)
    dn = "CN=builder.example.org,O=Fedora Project"
    c = make_app(f"[protected]\ntrusted_proxies = 127.0.0.1/32\nallow =\n    secret/* {dn}\n").test_client()
    assert_error(c.get(f"/v2/secret/image/referrers/{image}"), 404, "NAME_UNKNOWN")
    ok = c.get(
        f"/v2/secret/image/referrers/{image}",
        headers={"X-SSL-Client-DN": dn},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert ok.status_code == 200 and [m["artifactType"] for m in ok.json["manifests"]] == [SBOM]
