"""Simple-signing signatures in the tree: lookaside store in, ROOT/signatures + metadata out.

The signature bytes here are opaque test strings: the export core never parses a signature (it
matches them to manifests by the digest in the lookaside directory name). Real GPG signatures made
by ``skopeo copy --sign-by`` and verified by skopeo/podman are in tests/e2e/test_signatures.py.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from pulp_fedora_mirror import layout
from pulp_fedora_mirror.export import metadata
from pulp_fedora_mirror.export.errors import ExportError
from pulp_fedora_mirror.export.exporter import export_repository
from pulp_fedora_mirror.export.ocilayout import read_oci_layout
from pulp_fedora_mirror.export.prune import prune
from pulp_fedora_mirror.export.signatures import MAX_SIGNATURE_SIZE, merge, read_lookaside
from pulp_fedora_mirror.export.verify import verify

from .conftest import Env, run_cli, snapshot

NAME = "fedora/busybox"


def write_store(top: Path, name: str, digest: str, sigs: list[bytes]) -> None:
    """A lookaside store as skopeo writes it: ``<name>@sha256=<hex>/signature-<n>``."""
    d = top / f"{name}@sha256={layout.digest_hex(digest)}"
    d.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(sigs, 1):
        (d / f"signature-{n}").write_bytes(data)


def export_with(env: Env, store: Path, **kw) -> object:
    repo = read_oci_layout(env.layout, NAME)
    repo = type(repo)(**{**repo.__dict__, "signatures": read_lookaside(str(store))})
    return export_repository(repo, env.target(), **kw)


def sig_file(env: Env, digest: str, n: int) -> str:
    return os.path.join(env.root, layout.signature_path(NAME, digest, n))


def doc_sigs(env: Env, digest: str) -> list[bytes]:
    doc = metadata.load(os.path.join(env.meta, "fedora", "busybox.json"))
    assert doc is not None
    entries = doc["manifests"][digest].get("signatures", [])
    assert [e["index"] for e in entries] == list(range(1, len(entries) + 1))
    return [base64.b64decode(e["content"]) for e in entries]


def test_layout_paths() -> None:
    d = "sha256:" + "ab" * 32
    assert layout.signature_path(NAME, d, 2) == f"signatures/fedora/busybox@sha256={'ab' * 32}/signature-2"
    assert layout.parse_signature_path(layout.signature_path(NAME, d, 12)) == (NAME, d, 12)
    for bad in (
        f"signatures/fedora/busybox@sha256={'ab' * 32}/signature-0",
        f"signatures/fedora/busybox@sha256={'ab' * 32}/signature-01",
        f"signatures/Fedora@sha256={'ab' * 32}/signature-1",
        f"signatures/x@sha256={'ab' * 31}/signature-1",
        f"signatures/x@sha256={'ab' * 32}/signature-1\n",
    ):
        assert layout.parse_signature_path(bad) is None, bad
    with pytest.raises(ValueError):
        layout.signature_path("../x", d, 1)
    with pytest.raises(ValueError):
        layout.signature_path(NAME, d, 0)


def test_read_lookaside_stops_at_gap_and_merges_names(tmp_path: Path) -> None:
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    write_store(tmp_path, "a/b", d1, [b"one", b"two"])
    write_store(tmp_path, "other/name", d1, [b"two", b"three"])  # same digest under another name
    write_store(tmp_path, "c", d2, [b"x"])
    (tmp_path / f"c@sha256={'2' * 64}" / "signature-3").write_bytes(b"after a gap")
    (tmp_path / "not-a-signature-dir").mkdir()
    found = read_lookaside(str(tmp_path))
    assert found == {d1: [b"one", b"two", b"three"], d2: [b"x"]}


def test_read_lookaside_refuses_bad_files(tmp_path: Path) -> None:
    d = "sha256:" + "3" * 64
    with pytest.raises(ExportError, match="not a directory"):
        read_lookaside(str(tmp_path / "missing"))
    write_store(tmp_path, "x", d, [b""])
    with pytest.raises(ExportError, match="empty signature"):
        read_lookaside(str(tmp_path))
    write_store(tmp_path, "x", d, [b"x" * (MAX_SIGNATURE_SIZE + 1)])
    with pytest.raises(ExportError, match="at most"):
        read_lookaside(str(tmp_path))


def test_merge_keeps_published_numbers() -> None:
    assert merge([], [], [b"a", b"b", b"a"]) == [b"a", b"b"]
    assert merge([b"a"], [b"a", b"z"], [b"b", b"z"]) == [b"a", b"z", b"b"]
    assert merge([b"a", b"b"], [], [b"b"]) == [b"a", b"b"]


def test_export_writes_lookaside_store_and_metadata(env: Env, tmp_path: Path) -> None:
    store = tmp_path / "store"
    amd, index = env.descs["amd"]["digest"], env.descs["index"]["digest"]
    write_store(store, "registry.example.org:5000/candidate/busybox", amd, [b"sig-a1", b"sig-a2"])
    write_store(store, "x", index, [b"sig-index"])
    write_store(store, "x", "sha256:" + "9" * 64, [b"stray"])
    s = export_with(env, store)
    assert (s.signatures, s.signatures_written, s.signatures_unmatched) == (3, 3, 1)
    assert any("1 signature(s)" in w for w in s.warnings)
    assert open(sig_file(env, amd, 1), "rb").read() == b"sig-a1"
    assert open(sig_file(env, amd, 2), "rb").read() == b"sig-a2"
    assert not os.path.exists(sig_file(env, amd, 3))
    assert open(sig_file(env, index, 1), "rb").read() == b"sig-index"
    assert os.stat(sig_file(env, amd, 1)).st_mode & 0o777 == 0o644
    assert doc_sigs(env, amd) == [b"sig-a1", b"sig-a2"]
    assert doc_sigs(env, index) == [b"sig-index"]
    assert doc_sigs(env, env.descs["arm"]["digest"]) == []
    listing = open(os.path.join(env.root, "fullfiletimelist-containers")).read()
    assert "\t" + layout.signature_path(NAME, amd, 2) + "\n" in listing
    res = verify(env.root, env.meta)
    assert res.ok and not res.unreferenced, res
    assert res.checked == 20 + 9 + 3


def test_unchanged_reexport_writes_nothing_and_new_signature_gets_next_number(
    env: Env, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    amd = env.descs["amd"]["digest"]
    write_store(store, "a", amd, [b"first"])
    export_with(env, store)
    before = snapshot(env.root, env.meta)
    s = export_with(env, store)
    assert s.files_written == 0 and s.signatures_written == 0 and not s.metadata_changed
    assert snapshot(env.root, env.meta) == before

    # a second signer later; the lookaside store lists it first, but numbers already published stay
    write_store(store, "a", amd, [b"second", b"first"])
    s = export_with(env, store)
    assert s.signatures_written == 1 and s.metadata_changed
    assert doc_sigs(env, amd) == [b"first", b"second"]
    one = sig_file(env, amd, 1)
    assert os.lstat(one).st_ino == before[one][0]
    assert os.lstat(one).st_ctime_ns == before[one][4]
    assert open(sig_file(env, amd, 2), "rb").read() == b"second"

    # the source forgetting a signature does not unpublish it (clients may have cached the number)
    (store / f"a@sha256={layout.digest_hex(amd)}" / "signature-2").unlink()
    (store / f"a@sha256={layout.digest_hex(amd)}" / "signature-1").write_bytes(b"third")
    export_with(env, store)
    assert doc_sigs(env, amd) == [b"first", b"second", b"third"]


def test_lost_metadata_adopts_tree_numbering(env: Env, tmp_path: Path) -> None:
    store = tmp_path / "store"
    amd = env.descs["amd"]["digest"]
    write_store(store, "a", amd, [b"first", b"second"])
    export_with(env, store)
    os.unlink(os.path.join(env.meta, "fedora", "busybox.json"))
    write_store(store, "a", amd, [b"new"])
    export_with(env, store)
    assert doc_sigs(env, amd) == [b"first", b"second", b"new"]


def test_damaged_signature_file_is_replaced(env: Env, tmp_path: Path) -> None:
    store = tmp_path / "store"
    amd = env.descs["amd"]["digest"]
    write_store(store, "a", amd, [b"good"])
    export_with(env, store)
    p = sig_file(env, amd, 1)
    os.chmod(p, 0o644)
    with open(p, "wb") as fh:
        fh.write(b"evil")
    res = verify(env.root, env.meta)
    assert res.wrong_digest == [layout.signature_path(NAME, amd, 1)] and not res.ok
    s = export_with(env, store)
    assert s.replaced == [layout.signature_path(NAME, amd, 1)]
    assert open(p, "rb").read() == b"good"
    assert verify(env.root, env.meta).ok


def test_verify_reports_gaps_strays_and_missing(env: Env, tmp_path: Path) -> None:
    store = tmp_path / "store"
    amd = env.descs["amd"]["digest"]
    write_store(store, "a", amd, [b"one", b"two", b"three"])
    export_with(env, store)
    os.unlink(sig_file(env, amd, 2))
    bad = os.path.join(env.root, "signatures", "fedora", "busybox@sha256=nothex", "signature-1")
    os.makedirs(os.path.dirname(bad), mode=0o755)
    os.chmod(os.path.dirname(bad), 0o755)
    open(bad, "wb").close()
    os.chmod(bad, 0o644)
    res = verify(env.root, env.meta)
    assert res.missing == [layout.signature_path(NAME, amd, 2)]
    assert sorted(res.stray) == sorted([layout.signature_path(NAME, amd, 3), os.path.relpath(bad, env.root)])
    assert not res.ok


def test_prune_removes_signatures_only_with_their_manifest(env: Env, tmp_path: Path) -> None:
    store = tmp_path / "store"
    amd, oci = env.descs["amd"]["digest"], env.descs["oci"]["digest"]
    write_store(store, "a", amd, [b"amd-1", b"amd-2"])
    write_store(store, "a", oci, [b"oci-1"])
    export_with(env, store, now=1000)
    meta_file = os.path.join(env.meta, "fedora", "busybox.json")
    doc = json.loads(open(meta_file).read())
    # An older exporter rewrote the file without the signatures key: the manifest is still
    # exported under this name, so its signatures must stay.
    for entry in doc["manifests"].values():
        entry.pop("signatures", None)
    # ... and the oci image is gone from the repository.
    del doc["manifests"][oci]
    del doc["tags"]["oci"]
    with open(meta_file, "w") as fh:
        json.dump(doc, fh)
    s = prune(env.root, env.meta, 60, now=2000)
    assert s.deleted == [] and layout.signature_path(NAME, oci, 1) in s.waiting
    assert layout.signature_path(NAME, amd, 1) not in s.waiting
    s = prune(env.root, env.meta, 60, now=3000)
    assert layout.signature_path(NAME, oci, 1) in s.deleted
    assert layout.manifest_path(oci) in s.deleted
    assert not os.path.exists(os.path.dirname(sig_file(env, oci, 1)))
    assert os.path.exists(sig_file(env, amd, 2))
    # everything gone: the name's directories go too, signatures/ itself stays
    os.unlink(meta_file)
    prune(env.root, env.meta, 60, now=4000)
    s = prune(env.root, env.meta, 60, now=5000)
    deleted_sigs = [p for p in s.deleted if p.startswith("signatures/")]
    assert deleted_sigs == [layout.signature_path(NAME, amd, 2), layout.signature_path(NAME, amd, 1)]
    assert os.listdir(os.path.join(env.root, "signatures")) == []


def test_cli_export_signatures(env: Env, tmp_path: Path) -> None:
    store = tmp_path / "store"
    amd = env.descs["amd"]["digest"]
    write_store(store, "candidate/busybox", amd, [b"cli-sig"])
    r = run_cli(*env.cli_args(), "--signatures", str(store), "-q")
    assert r.returncode == 0, r.stderr
    assert "signatures: 1 published, 1 written" in r.stdout
    assert open(sig_file(env, amd, 1), "rb").read() == b"cli-sig"
    r = run_cli(*env.cli_args(), "--signatures", str(tmp_path / "nope"), "-q")
    assert r.returncode != 0 and "not a directory" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("verify", env.root, "--metadata-dir", env.meta)
    assert r.returncode == 0, r.stdout


def test_write_order_signatures_before_metadata(env: Env, tmp_path: Path, paused) -> None:
    """Observed on a real exporter process stopped at every publishing rename."""
    store = tmp_path / "store"
    amd = env.descs["amd"]["digest"]
    write_store(store, "a", amd, [b"s1", b"s2"])
    p = paused([*env.cli_args(), "--signatures", str(store)])
    meta_file = os.path.join(env.meta, "fedora", "busybox.json")
    while (label := p.next_stop()) is not None:
        if label.startswith("signature "):
            assert not os.path.exists(meta_file)
            if label.endswith("signature-2"):
                assert os.path.exists(sig_file(env, amd, 1))  # numbers appear in order, no gap
        p.resume()
    assert p.status == 0, p.proc.stderr.read()
    kinds = [x.split(" ", 1)[0] for x in p.labels]
    last_manifest = max(i for i, k in enumerate(kinds) if k == "manifest")
    sig_stops = [i for i, k in enumerate(kinds) if k == "signature"]
    assert len(sig_stops) == 2
    assert last_manifest < sig_stops[0] < sig_stops[1] < kinds.index("metadata")
    assert p.labels[sig_stops[0]].endswith("/signature-1")
