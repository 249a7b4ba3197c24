"""Native v5 load-time checks: a file that is not exactly consistent is rejected, whole."""

from __future__ import annotations

import json
import logging
import re

import pytest

from crane_fedora.config import parse_config
from crane_fedora.metadata.model import MetadataError
from crane_fedora.metadata.parse import SkipFile, parse_bytes

from .builder import Native, busybox

CFG = parse_config("")


def doc() -> dict:
    return busybox()[0].doc()


def parse(d: dict, cfg=CFG):
    return parse_bytes(json.dumps(d).encode(), "x.json", cfg)


def test_valid_document_indexes_everything():
    native, d = busybox()
    repo = parse(native.doc())
    assert repo.kind == "native" and repo.name == "fedora/busybox"
    assert repo.tags["latest"] is repo.manifests[d["index"]]
    assert repo.manifests[d["index"]].default_child is repo.manifests[d["amd64"]]
    assert repo.manifests[d["noamd64"]].default_child is None
    assert repo.sorted_tags == tuple(sorted(native.tags))
    assert set(repo.blobs) == set(native.blobs)


def test_default_platform_variant():
    native, d = busybox()
    repo = parse(native.doc(), parse_config("[registry]\ndefault_platform = linux/arm64/v8\n"))
    assert repo.manifests[d["index"]].default_child.digest == d["arm64"]
    repo = parse(native.doc(), parse_config("[registry]\ndefault_platform = linux/arm64/v7\n"))
    assert repo.manifests[d["index"]].default_child is None


def _first_manifest(x: dict) -> dict:
    return next(iter(x["manifests"].values()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x: x.update(version=7), "needs version 5 or 6"),
        (lambda x: x.update(version=True), "needs version 5 or 6"),
        (lambda x: x.update({"repo-registry-id": "Bad/Name"}), "invalid repo-registry-id"),
        (lambda x: x.update(protected="yes"), "protected"),
        (lambda x: x["urls"].update(master="ftp://x/"), "urls.master"),
        (lambda x: x["urls"].update(master="https://x/no-slash"), "urls.master"),
        (lambda x: x["urls"].update(mirror="https://x/?q=1/"), "urls.mirror"),
        (lambda x: _first_manifest(x).update(body=_first_manifest(x)["body"] + " "), "size"),
        (lambda x: _first_manifest(x).update(body=_first_manifest(x)["body"][:-1] + " "), "digest mismatch"),
        (
            lambda x: _first_manifest(x).update(
                mediaType="application/vnd.docker.distribution.manifest.v1+prettyjws"
            ),
            "unsupported mediaType",
        ),
        (lambda x: x["tags"].update(broken="sha256:" + "0" * 64), "not in manifests"),
        (lambda x: x["tags"].update({"-bad": next(iter(x["tags"].values()))}), "invalid tag"),
        (lambda x: x["blobs"].update({"sha256:" + "1" * 64: {"size": -1, "published": 0}}), "bad size"),
        (lambda x: x["blobs"].update({"md5:abc": {"size": 1, "published": 0}}), "not a sha256 digest"),
        (lambda x: x.update(tags=[]), "tags must be an object"),
    ],
)
def test_rejections(mutate, message):
    d = doc()
    mutate(d)
    with pytest.raises(MetadataError, match=re.escape(message)):
        parse(d)


def test_not_json_and_not_object():
    with pytest.raises(MetadataError, match="not valid JSON"):
        parse_bytes(b"{", "x.json", CFG)
    with pytest.raises(MetadataError, match="object"):
        parse_bytes(b"[]", "x.json", CFG)
    with pytest.raises(SkipFile):
        parse_bytes(b'{"version": 1}', "x.json", CFG)


def test_allowed_url_prefixes():
    cfg = parse_config(
        "[mirrors]\nallowed_url_prefixes = https://dl.example.org/ https://download.example.org/\n"
    )
    parse(doc(), cfg)
    cfg = parse_config("[mirrors]\nallowed_url_prefixes = https://dl.example.org/\n")
    with pytest.raises(MetadataError, match=r"urls\.mirror"):
        parse(doc(), cfg)


def test_rejected_file_logged_at_load(make_app, data_dir, caplog):
    n = Native("a/evil", master="https://evil.example/")
    n.tag("x", n.image("1"))
    n.write(data_dir)
    with caplog.at_level(logging.ERROR, logger="crane_fedora"):
        app = make_app("[mirrors]\nallowed_url_prefixes = https://dl.example.org/\n")
    assert "a/evil" not in app.extensions["crane_fedora"].store.index.repos
    assert any("allowed_url_prefixes" in r.getMessage() for r in caplog.records)


def _v6(d: dict) -> dict:
    d["version"] = 6
    return d


def test_version6_keys_are_read_onto_the_manifest():
    native, digests = busybox()
    d = _v6(native.doc())
    entry = d["manifests"][digests["amd64"]]
    entry.update(
        platform={"os": "linux", "architecture": "amd64"},
        labels={"org.flatpak.ref": "app/org.test.Hello/x86_64/stable"},
        annotations={"org.opencontainers.image.title": "hello"},
        created="2026-11-29T01:40:00Z",
        signatures=[{"index": 1, "content": "c2lnLTE="}, {"index": 2, "content": "c2lnLTI="}],
        subject={
            "digest": digests["index"],
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "size": 1,
        },
        artifactType="application/vnd.example+json",
    )
    m = parse(d).manifests[digests["amd64"]]
    assert m.platform == {"os": "linux", "architecture": "amd64"}
    assert m.labels["org.flatpak.ref"] == "app/org.test.Hello/x86_64/stable"
    assert m.annotations == {"org.opencontainers.image.title": "hello"}
    assert m.created == "2026-11-29T01:40:00Z"
    assert m.signatures == (b"sig-1", b"sig-2")
    assert m.subject["digest"] == digests["index"] and m.artifact_type == "application/vnd.example+json"
    assert m.blobs and m.blobs == tuple(entry["blobs"])


def test_version5_manifest_has_empty_version6_facts():
    native, digests = busybox()
    m = parse(native.doc()).manifests[digests["amd64"]]
    facts = (m.platform, dict(m.labels), dict(m.annotations), m.signatures, m.subject)
    assert facts == (None, {}, {}, (), None)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("labels", {"a": 1}, "labels must map strings to strings"),
        ("annotations", ["x"], "annotations must map strings to strings"),
        ("platform", {"os": "linux"}, "platform needs string os and architecture"),
        ("signatures", [{"index": 2, "content": "eA=="}], "signature 1 must be"),
        ("signatures", [{"index": 1, "content": "not base64!"}], "signature 1 is not base64"),
        ("subject", {"digest": "sha256:zz", "mediaType": "x", "size": 1}, "subject must be a descriptor"),
        ("artifactType", 5, "artifactType must be a string"),
        ("created", 5, "created must be a string"),
    ],
)
def test_version6_bad_keys_reject_the_file(key, value, message):
    native, digests = busybox()
    d = _v6(native.doc())
    d["manifests"][digests["amd64"]][key] = value
    with pytest.raises(MetadataError, match=re.escape(message)):
        parse(d)
