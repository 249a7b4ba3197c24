"""The ``/v2`` registry API as one function of the WSGI environ.

Why not plain Flask views: the hot requests (manifest GET/HEAD, blob redirect) must cost a few
microseconds, so the logic works on the raw environ and returns ``(status, headers, body)``.
The same function serves both the WSGI fast path (:mod:`crane_fedora.fastpath`) and the Flask
blueprint (:mod:`crane_fedora.views.registry`), so the two cannot disagree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import stat
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import parse_qs, quote

from werkzeug.http import parse_range_header

from crane_fedora.cdn import finish_url
from crane_fedora.config import Config
from crane_fedora.metadata.index import Index
from crane_fedora.metadata.model import NATIVE, Manifest, NativeRepo, Pulp2Repo
from crane_fedora.metadata.store import MetadataStore
from crane_fedora.negotiation import AcceptCache
from crane_fedora.protected import may_read, visible_names
from pulp_fedora_mirror.layout import DIGEST_RE, blob_path, is_valid_digest, is_valid_name, join_url
from pulp_fedora_mirror.layout import TAG_RE as _TAG_RE
from pulp_fedora_mirror.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX

log = logging.getLogger(__name__)

API_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
#: On every JSON document we generate: error bodies echo client input (names, tags), and no
#: browser may sniff them into something executable.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
JSON = "application/json"
OCTET = "application/octet-stream"
ALLOW = "GET, HEAD, OPTIONS"
KEYWORDS = frozenset({"manifests", "blobs", "tags", "referrers"})
#: ``GET /v2/`` advertises the signature extension (containers/image then asks for signatures there
#: when no lookaside is configured for the registry).
SIGNATURES_HEADER = ("X-Registry-Supports-Signatures", "1")
#: The docker/containers "extensions" API lives beside /v2, not under it.
EXTENSIONS_PREFIX = "/extensions/v2/"


def is_registry_path(path: str) -> bool:
    """``/v2``, ``/v2/...`` or ``/extensions/v2/...``: what :meth:`Registry.handle` answers."""
    return (path[:3] == "/v2" and (len(path) == 3 or path[3] == "/")) or path.startswith(EXTENSIONS_PREFIX)


STATUS = {
    200: "200 OK",
    206: "206 Partial Content",
    301: "301 Moved Permanently",
    302: "302 Found",
    304: "304 Not Modified",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    416: "416 Range Not Satisfiable",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
_tag_match = _TAG_RE.match
#: Pulp 2 repository ids: letters, digits, "-", "_", "." (serve mode uses one as a directory name).
_REPO_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\Z")
_digest_match = DIGEST_RE.match


@dataclass(frozen=True, slots=True)
class FileBody:
    """An already open file to stream (serve-content mode without X-Sendfile): ``size`` bytes from
    its current position; ``whole`` when that is the entire file (then the server's
    ``wsgi.file_wrapper`` may send it, e.g. with sendfile)."""

    fh: BinaryIO
    size: int
    whole: bool = True


Reply = tuple[str, list[tuple[str, str]], "bytes | FileBody"]


def error_body(code: str, message: str, detail: object = None) -> bytes:
    """The OCI distribution error document."""
    return json.dumps({"errors": [{"code": code, "message": message, "detail": detail or {}}]}).encode()


def error(
    status: int, code: str, message: str, detail: object = None, extra: tuple[tuple[str, str], ...] = ()
) -> Reply:
    """An error reply with the registry API header (every /v2 answer carries it)."""
    body = error_body(code, message, detail)
    return (
        STATUS[status],
        [("Content-Type", JSON), ("Content-Length", str(len(body))), API_HEADER, NOSNIFF, *extra],
        body,
    )


def _ranged(fh: BinaryIO, size: int, wanted: str, headers: list[tuple[str, str]]) -> Reply:
    """A ``Range`` answer for an open file of ``size`` bytes whose 200 ``headers`` are given.

    One satisfiable byte range: 206 with that slice. One range past the end: 416. Anything else
    (several ranges, another unit, bad syntax): the whole file, which RFC 9110 allows and clients
    (podman's partial pulls included) accept. Werkzeug parses (and drops malformed specs such as
    ``bytes=5-1``); the clipping is RFC 9110 14.1.2's.
    """
    parsed = parse_range_header(wanted)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return STATUS[200], headers, FileBody(fh, size)
    start, stop = parsed.ranges[0]  # stop is exclusive, None: to the end
    if start < 0:  # a suffix: the last -start bytes, all of them when the file is shorter
        start, stop = max(0, size + start), size
    stop = size if stop is None else min(stop, size)
    if start >= stop:
        fh.close()
        return error(
            416, "RANGE_INVALID", "requested range not satisfiable", {"size": size},
            (("Content-Range", f"bytes */{size}"),),
        )  # fmt: skip
    fh.seek(start)
    headers = [(k, str(stop - start) if k == "Content-Length" else v) for k, v in headers]
    headers.append(("Content-Range", f"bytes {start}-{stop - 1}/{size}"))
    return STATUS[206], headers, FileBody(fh, stop - start, whole=start == 0 and stop == size)


def _json_reply(doc: object, head: bool, extra: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps(doc).encode()
    headers = [("Content-Type", JSON), ("Content-Length", str(len(body))), API_HEADER, NOSNIFF]
    if extra:
        headers.extend(extra)
    return STATUS[200], headers, b"" if head else body


#: ETags looked at in If-None-Match. A client revalidating a manifest sends one; scanning 100,000
#: cost ~13 ms per request. Missing a match further on only means a 200 instead of a 304.
MAX_ETAGS = 16


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2) of ``etag`` against an If-None-Match value.

    Hand-written, not Werkzeug's ``parse_etags(...).contains_weak``: benchmarks/hotpath_bench.py
    puts the library at ~35% of a manifest GET per call and this scan at ~5%, and a cache does
    not help as it does for Accept (every manifest has its own ETag, so the values are as many
    as the manifests clients revalidate).
    """
    for token in header.split(",", MAX_ETAGS)[:MAX_ETAGS]:
        token = token.strip()
        if token.startswith("W/"):
            token = token[2:]
        if token in ("*", etag):
            return True
    return False


#: An image index up to its ``manifests`` list; the precomputed descriptors follow.
_REFERRERS_HEAD = b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": ['


def signature_entry(digest: str, data: bytes) -> dict[str, object]:
    """One signature as the extension API lists it.

    ``name`` is ``<manifest digest>@<32 hex>`` like pulp-container's; derived from the signature's
    own hash, so it is the same on every crane and across reloads.
    """
    return {
        "schemaVersion": 2,
        "type": "atomic",
        "name": f"{digest}@{hashlib.sha256(data).hexdigest()[:32]}",
        "content": base64.b64encode(data).decode("ascii"),
    }


class Registry:
    """Answers ``/v2`` requests from the store's current index."""

    def __init__(self, config: Config, store: MetadataStore, serve_content: bool) -> None:
        self.config = config
        self.store = store
        self.serve_content = serve_content
        self.settle = config.settle_seconds
        self.acceptor = AcceptCache()
        #: Called with "master" or "mirror" for every blob redirect (metrics); set by create_app.
        self.on_redirect: Callable[[str], None] | None = None
        self._tags_cache: dict[NativeRepo, bytes] = {}
        self._tags_index: Index | None = None

    # -- entry point ------------------------------------------------------------------------
    def handle(self, environ: dict) -> Reply:
        """Answer one request whose PATH_INFO is ``/v2`` or starts with ``/v2/`` or ``/extensions/v2/``."""
        if environ.get("PATH_INFO", "").startswith(EXTENSIONS_PREFIX):
            reply = self._extensions(environ)
        else:
            reply = self._handle(environ)
        if reply[2] and environ.get("REQUEST_METHOD") == "HEAD":
            return reply[0], reply[1], b""
        return reply

    def _handle(self, environ: dict) -> Reply:
        path = environ.get("PATH_INFO", "")
        if path == "/v2":
            return STATUS[301], [("Location", "/v2/"), ("Content-Length", "0"), API_HEADER], b""
        method = environ.get("REQUEST_METHOD", "GET")
        if method != "GET" and method != "HEAD":
            if method == "OPTIONS":
                return STATUS[200], [("Allow", ALLOW), ("Content-Length", "0"), API_HEADER], b""
            return error(
                405, "UNSUPPORTED", "this registry is read-only", {"method": method}, (("Allow", ALLOW),)
            )
        head = method == "HEAD"
        rest = path[4:]
        if rest == "":
            headers = [("Content-Type", JSON), ("Content-Length", "2"), API_HEADER, NOSNIFF]
            if self.config.signatures_extension:
                headers.append(SIGNATURES_HEADER)
            return STATUS[200], headers, b"" if head else b"{}"
        index = self.store.index
        if rest == "_catalog":
            return self._catalog(environ, index, head)
        parts = rest.rsplit("/", 2)
        if len(parts) != 3 or parts[1] not in KEYWORDS or not parts[2]:
            return error(404, "NAME_UNKNOWN", "unknown endpoint", {"path": path[:300]})
        name, keyword, ref = parts
        if not is_valid_name(name):
            return error(400, "NAME_INVALID", "invalid repository name", {"name": name[:300]})
        repo = index.repos.get(name)
        if repo is None or (repo.protected and not may_read(name, environ, self.config)):
            return error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        if repo.kind == NATIVE:
            if keyword == "manifests":
                return self._manifest(repo, ref, environ, head)
            if keyword == "blobs":
                return self._blob(repo, ref, head)
            if keyword == "referrers":
                return self._referrers(repo, ref, environ, head)
            return self._tags(repo, ref, environ, head)
        if keyword == "referrers":
            return self._referrers(None, ref, environ, head)
        return self._pulp2(repo, keyword, ref, environ, head)  # type: ignore[arg-type]

    # -- signatures (containers/image "extensions" API) ---------------------------------------
    def _extensions(self, environ: dict) -> Reply:
        """``GET /extensions/v2/<name>/signatures/<digest>``: the simple-signing signatures.

        The JSON containers/image and pulp-container use; the bytes come from the metadata, so
        crane needs no access to the tree. Protected repositories as for manifests.
        """
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            if method == "OPTIONS":
                return STATUS[200], [("Allow", ALLOW), ("Content-Length", "0"), API_HEADER], b""
            return error(
                405, "UNSUPPORTED", "this registry is read-only", {"method": method}, (("Allow", ALLOW),)
            )
        parts = path[len(EXTENSIONS_PREFIX) :].rsplit("/", 2)
        if len(parts) != 3 or parts[1] != "signatures" or not parts[2]:
            return error(404, "NAME_UNKNOWN", "unknown endpoint", {"path": path[:300]})
        name, _keyword, ref = parts
        if not is_valid_name(name):
            return error(400, "NAME_INVALID", "invalid repository name", {"name": name[:300]})
        repo = self.store.index.repos.get(name)
        if repo is None or (repo.protected and not may_read(name, environ, self.config)):
            return error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        if not _digest_match(ref):
            if is_valid_digest(ref):
                return error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "digest": ref})
            return error(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:300]})
        if repo.kind != NATIVE:
            # Pulp 2 repositories carry no signatures; their manifests are not known here either.
            return _json_reply({"signatures": []}, method == "HEAD")
        manifest = repo.manifests.get(ref)
        if manifest is None:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "digest": ref})
        return _json_reply({"signatures": [signature_entry(ref, s) for s in manifest.signatures]}, False)

    # -- OCI 1.1 referrers --------------------------------------------------------------------
    def _referrers(self, repo: NativeRepo | None, ref: str, environ: dict, head: bool) -> Reply:
        """``GET /v2/<name>/referrers/<digest>[?artifactType=…]``: an image index, never a 404.

        The descriptors were computed once per snapshot (the metadata's ``subject`` fields); a
        repository without referrers, or a Pulp 2 one, answers an empty index.
        """
        if not _digest_match(ref) and not is_valid_digest(ref):
            return error(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:300]})
        found: tuple = repo.referrers.get(ref, ()) if repo is not None else ()
        extra: list[tuple[str, str]] = []
        query = environ.get("QUERY_STRING", "")
        if query:
            wanted = parse_qs(query, keep_blank_values=True).get("artifactType")
            if wanted:
                found = tuple(r for r in found if r[0] == wanted[-1])
                extra.append(("OCI-Filters-Applied", "artifactType"))
        body = _REFERRERS_HEAD + b",".join(r[1] for r in found) + b"]}"
        headers = [("Content-Type", OCI_INDEX), ("Content-Length", str(len(body))), API_HEADER, NOSNIFF]
        headers.extend(extra)
        return STATUS[200], headers, b"" if head else body

    # -- native repositories ----------------------------------------------------------------
    def _manifest(self, repo: NativeRepo, ref: str, environ: dict, head: bool) -> Reply:
        by_tag = _tag_match(ref) is not None
        if by_tag:
            manifest = repo.tags.get(ref)
        elif _digest_match(ref):
            manifest = repo.manifests.get(ref)
        elif ":" in ref:  # no tag has a colon: a digest, or a malformed one
            if not is_valid_digest(ref):
                return error(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:300]})
            manifest = None  # another algorithm: valid, but nothing is stored under it
        else:
            # Not a valid tag, so no manifest can have it: 404 like Distribution (the spec lists
            # only 200 and 404 for manifest GET/HEAD), not 400 TAG_INVALID.
            manifest = None
        if manifest is None:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": repo.name, "reference": ref})
        quality = self.acceptor(environ.get("HTTP_ACCEPT"))
        chosen: Manifest = manifest
        best = quality(manifest.media_type)
        child = manifest.default_child
        if child is not None and by_tag:
            q = quality(child.media_type)
            if q > best:
                chosen, best = child, q
        if best <= 0.0:
            return error(
                404,
                "MANIFEST_UNKNOWN",
                "no acceptable media type for this manifest",
                {"name": repo.name, "reference": ref, "mediaType": manifest.media_type},
            )
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm and _etag_matches(inm, chosen.etag):
            return (
                STATUS[304],
                [("ETag", chosen.etag), ("Docker-Content-Digest", chosen.digest), API_HEADER],
                b"",
            )
        headers = [
            ("Content-Type", chosen.media_type),
            ("Content-Length", chosen.length),
            ("Docker-Content-Digest", chosen.digest),
            ("ETag", chosen.etag),
            API_HEADER,
        ]
        if by_tag:
            headers.append(("Vary", "Accept"))
        return STATUS[200], headers, b"" if head else chosen.body

    def _blob(self, repo: NativeRepo, ref: str, head: bool) -> Reply:
        if not _digest_match(ref):
            if is_valid_digest(ref):  # another algorithm: valid, but nothing is stored under it
                return error(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": ref})
            return error(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:300]})
        info = repo.blobs.get(ref)
        if info is None:
            manifest = repo.manifests.get(ref)
            if manifest is None:
                return error(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": ref})
            headers = [
                ("Content-Type", OCTET),
                ("Content-Length", manifest.length),
                ("Docker-Content-Digest", ref),
                ("ETag", manifest.etag),
                API_HEADER,
            ]
            return STATUS[200], headers, b"" if head else manifest.body
        size, published = info
        if head:
            return (
                STATUS[200],
                [
                    ("Content-Type", OCTET),
                    ("Content-Length", str(size)),
                    ("Docker-Content-Digest", ref),
                    API_HEADER,
                ],
                b"",
            )
        mirror = repo.mirror
        settled = mirror is not None and published + self.settle <= time.time()
        base = mirror if settled else repo.master
        if self.on_redirect is not None:
            self.on_redirect("mirror" if settled else "master")
        location = finish_url(join_url(base, blob_path(ref)), self.config)
        return (
            STATUS[302],
            [("Location", location), ("Content-Length", "0"), ("Docker-Content-Digest", ref), API_HEADER],
            b"",
        )

    def _tags(self, repo: NativeRepo, ref: str, environ: dict, head: bool) -> Reply:
        if ref != "list":
            return error(
                404, "NAME_UNKNOWN", "unknown endpoint", {"path": environ.get("PATH_INFO", "")[:300]}
            )
        if not environ.get("QUERY_STRING"):
            body = self._full_tags_body(repo)
            headers = [("Content-Type", JSON), ("Content-Length", str(len(body))), API_HEADER, NOSNIFF]
            return STATUS[200], headers, b"" if head else body
        result = self._page(repo.sorted_tags, environ, f"/v2/{repo.name}/tags/list", default_all=True)
        if isinstance(result[0], str):
            return result  # type: ignore[return-value]
        items, link = result
        return _json_reply({"name": repo.name, "tags": items}, head, link)  # type: ignore[arg-type]

    def _full_tags_body(self, repo: NativeRepo) -> bytes:
        """The unpaginated tag list, serialised once per repository snapshot (bounded cache).

        Keyed by the repository object, and dropped whenever the index is swapped, so a reload
        never serves a stale list and old snapshots are not kept alive.
        """
        index = self.store.index
        if self._tags_index is not index:
            self._tags_cache, self._tags_index = {}, index
        cache = self._tags_cache
        body = cache.get(repo)
        if body is None:
            if len(cache) >= 4096:
                cache.clear()
            body = cache[repo] = json.dumps({"name": repo.name, "tags": list(repo.sorted_tags)}).encode()
        return body

    def _catalog(self, environ: dict, index: Index, head: bool) -> Reply:
        if not self.config.catalog:
            return error(404, "NAME_UNKNOWN", "the catalog is disabled on this registry")
        names = visible_names(index, environ, self.config)
        result = self._page(names, environ, "/v2/_catalog", default_all=False)
        if isinstance(result[0], str):
            return result  # type: ignore[return-value]
        items, link = result
        return _json_reply({"repositories": items}, head, link)  # type: ignore[arg-type]

    def _page(self, items: tuple[str, ...], environ: dict, base: str, default_all: bool):
        """``n``/``last`` pagination over a sorted tuple; returns (items, extra headers) or a Reply."""
        query = environ.get("QUERY_STRING", "")
        n: int | None = None
        last = ""
        if query:
            qs = parse_qs(query, keep_blank_values=True)
            raw_n = qs.get("n", [""])[-1]
            last = qs.get("last", [""])[-1]
            if raw_n:
                if not raw_n.isascii() or not raw_n.isdigit():
                    return error(
                        400,
                        "PAGINATION_NUMBER_INVALID",
                        "n must be a non-negative integer",
                        {"n": raw_n[:50]},
                    )
                # int() of thousands of digits raises; anything that long is "as many as allowed"
                n = min(
                    int(raw_n[:12]) if len(raw_n) <= 12 else self.config.page_size_max,
                    self.config.page_size_max,
                )
        if n is None:
            n = len(items) if default_all else self.config.page_size_max
        start = bisect_right(items, last) if last else 0
        chunk = list(items[start : start + n])
        extra: list[tuple[str, str]] = []
        if chunk and start + n < len(items):
            extra.append(("Link", f'<{base}?n={n}&last={quote(chunk[-1], safe="")}>; rel="next"'))
        return chunk, extra

    # -- Pulp 2 repositories ----------------------------------------------------------------
    def _pulp2(self, repo: Pulp2Repo, keyword: str, ref: str, environ: dict, head: bool) -> Reply:
        if keyword == "blobs":
            if not is_valid_digest(ref):  # as for native repositories: never redirected
                return error(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:300]})
            rel, media_type = f"blobs/{ref}", OCTET
        elif keyword == "tags":
            if ref != "list":
                return error(404, "NAME_UNKNOWN", "unknown endpoint")
            rel, media_type = "tags/list", JSON
        else:
            if _tag_match(ref) is None:
                if ":" not in ref:  # cannot be a tag: nothing to redirect to (as native)
                    return error(
                        404,
                        "MANIFEST_UNKNOWN",
                        "manifest unknown",
                        {"name": repo.name, "reference": ref[:300]},
                    )
                if not is_valid_digest(ref):
                    return error(400, "DIGEST_INVALID", "invalid digest", {"digest": ref[:300]})
            rel, media_type = self._pulp2_manifest(repo, ref, environ.get("HTTP_ACCEPT"))
        if self.serve_content:
            return self._send_file(repo, rel, media_type, keyword, head, environ)
        location = finish_url(join_url(repo.url, rel), self.config)
        return STATUS[302], [("Location", location), ("Content-Length", "0"), API_HEADER], b""

    def _pulp2_manifest(self, repo: Pulp2Repo, ref: str, accept: str | None) -> tuple[str, str]:
        """Crane's rules (crane.md §4) with real Accept parsing: q-values, ``*/*``, none = anything."""
        if repo.version == 2:
            return f"manifests/{ref}", JSON
        quality = self.acceptor(accept)
        s2 = quality(DOCKER_MANIFEST) > 0
        ml = quality(DOCKER_LIST) > 0
        if not repo.schema2_data and not repo.manifest_list_data:
            return f"manifests/1/{ref}", JSON
        if ml and ref in repo.manifest_list_data:
            return f"manifests/list/{ref}", DOCKER_LIST
        amd64 = repo.amd64_tags.get(ref)
        if amd64 is not None:
            digest, version = amd64
            if s2:
                return f"manifests/{version}/{digest}", DOCKER_MANIFEST if version == 2 else JSON
            if version == 1:
                return f"manifests/1/{digest}", JSON
            return f"manifests/1/{ref}", JSON
        if s2 and ref in repo.schema2_data:
            return f"manifests/2/{ref}", DOCKER_MANIFEST
        return f"manifests/1/{ref}", JSON

    def _send_file(
        self, repo: Pulp2Repo, rel: str, media_type: str, keyword: str, head: bool, environ: dict
    ) -> Reply:
        """Crane's serve-content mode: ``<content_dir_v2>/<repository>/<rel>``."""
        unknown = {"manifests": "MANIFEST_UNKNOWN", "blobs": "BLOB_UNKNOWN"}.get(keyword, "NAME_UNKNOWN")
        # One path component of Pulp 2's repository-id alphabet: no "/", no leading ".", no NUL
        # (os.stat raised ValueError, a 500) and nothing a header could not carry (X-Sendfile).
        if _REPO_ID_RE.match(repo.repository) is None:
            return error(404, unknown, "not found")
        path = os.path.join(self.config.content_dir_v2, repo.repository, rel)
        # Open first, then describe what was opened: a file removed or replaced between a stat
        # and a later open can no longer turn into a 500 after the headers have gone out.
        try:
            fh = open(path, "rb")
        except OSError:
            return error(404, unknown, "not found", {"name": repo.name})
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            fh.close()
            return error(404, unknown, "not found", {"name": repo.name})
        max_age = (
            43200 if os.path.basename(rel).startswith("sha256:") else self.config.data_dir_polling_interval
        )
        headers = [
            ("Content-Type", media_type),
            ("Content-Length", str(st.st_size)),
            ("Cache-Control", f"public, max-age={max_age}"),
            API_HEADER,
        ]
        if self.config.use_x_sendfile or head:
            fh.close()
            if self.config.use_x_sendfile:  # Apache answers Range itself
                headers.append(("X-Sendfile", os.path.abspath(path)))
            return STATUS[200], headers, b""
        headers.append(("Accept-Ranges", "bytes"))
        wanted = environ.get("HTTP_RANGE")
        if wanted is not None and "HTTP_IF_RANGE" not in environ:  # no validator to match If-Range
            return _ranged(fh, st.st_size, wanted, headers)
        return STATUS[200], headers, FileBody(fh, st.st_size)
