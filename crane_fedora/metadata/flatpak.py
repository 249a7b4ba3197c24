"""The Flatpak registry index (``/index/static``, ``/index/dynamic``), precomputed per snapshot.

Format and query language: flatpak-oci-specs ``registry-index.md`` and docs/flatpak.md. Everything
a query filters on (platform, labels, annotations, tags) comes from the version-6 metadata
(docs/layout.md §4.1), so no request ever reads a blob.

Why precomputed: the flatpak client asks one question (``tag=latest``, its architecture, ``os=linux``,
``label:org.flatpak.ref:exists=1``) over and over. Each snapshot holds, per repository, the index
entries (tags grouped per digest, platform, labels) when it is built; the answer to a query, with
its gzip and ETag, is rendered on its first use and kept for the snapshot's life in a bounded
cache, and parsed queries are cached by their raw string: the common query then costs two dict
look-ups, like a manifest GET.
Rendering the common answers eagerly at build time was measured (benchmarks/flatpak_bench.py):
it more than doubled the index's share of the load time, for a render (~2 ms) that the first
request pays once anyway. Unchanged repositories reuse the previous snapshot's entries, so a
reload only redoes what changed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

from crane_fedora.metadata.model import NATIVE, Manifest, NativeRepo
from pulp_fedora_mirror.layout import TAG_RE, is_valid_name
from pulp_fedora_mirror.mediatypes import LIST_TYPES

#: The label every Flatpak image carries; the client's query always asks for it.
FLATPAK_REF = "org.flatpak.ref"
#: Tag the client asks for when its remote URL has no ``#fragment``.
DEFAULT_TAG = "latest"
#: A query longer than this, or with more parameters, is refused (nobody needs more).
MAX_QUERY = 8192
MAX_PARAMS = 64
#: Rendered answers (and parsed query strings) kept per snapshot; cleared when full. The byte
#: bound keeps a client sending many distinct queries from pinning 512 full documents.
CACHE_SIZE = 512
CACHE_BYTES = 32 * 1024 * 1024
_PLATFORM_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


class QueryError(ValueError):
    """A query the index does not understand; ``code`` is an OCI error code, answered with 400."""

    def __init__(self, code: str, message: str, detail: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or {}


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed, validated, canonical query: equal queries are equal however they were spelt."""

    repository: str | None = None
    tags: frozenset[str] | None = None
    os: str | None = None
    architecture: str | None = None
    #: (key, value), value None for ``:exists=1``; sorted
    labels: tuple[tuple[str, str | None], ...] = ()
    annotations: tuple[tuple[str, str | None], ...] = ()


def _key_ok(key: str) -> bool:
    return 0 < len(key) <= 256 and key.isprintable() and "=" not in key


def _value_ok(value: str) -> bool:
    return len(value) <= 4096 and value.isprintable()


def parse_query(query_string: str) -> Query:
    """Parse ``QUERY_STRING`` (keys percent-encoded or not); raise :class:`QueryError` if bad."""
    if len(query_string) > MAX_QUERY:
        raise QueryError("UNSUPPORTED", "query too long", {"limit": MAX_QUERY})
    try:
        pairs = parse_qsl(
            query_string,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except UnicodeDecodeError:
        raise QueryError("UNSUPPORTED", "query is not valid UTF-8 after percent-decoding") from None
    except ValueError:
        raise QueryError("UNSUPPORTED", "too many query parameters", {"limit": MAX_PARAMS}) from None
    single: dict[str, str] = {}
    tags: set[str] = set()
    conditions: dict[str, set[tuple[str, str | None]]] = {"label": set(), "annotation": set()}
    for key, value in pairs:
        shown = {"key": key[:300], "value": value[:300]}
        if key in ("repository", "os", "architecture"):
            if key in single and single[key] != value:
                raise QueryError("UNSUPPORTED", f"{key} given twice", shown)
            if key == "repository" and not is_valid_name(value):
                raise QueryError("NAME_INVALID", "invalid repository name", shown)
            if key != "repository" and not _PLATFORM_RE.match(value):
                raise QueryError("UNSUPPORTED", f"invalid {key}", shown)
            single[key] = value
        elif key == "tag":
            if not TAG_RE.match(value):
                raise QueryError("TAG_INVALID", "invalid tag", shown)
            tags.add(value)
        else:
            kind, sep, rest = key.partition(":")
            if not sep or kind not in conditions:
                raise QueryError("UNSUPPORTED", "unknown query parameter", shown)
            if rest.endswith(":exists"):
                name = rest[: -len(":exists")]
                if value != "1":
                    raise QueryError("UNSUPPORTED", f"{kind}:<key>:exists takes only the value 1", shown)
                cond: tuple[str, str | None] = (name, None)
            else:
                name = rest
                if not _value_ok(value):
                    raise QueryError("UNSUPPORTED", f"invalid {kind} value", shown)
                cond = (name, value)
            if not _key_ok(name):
                raise QueryError("UNSUPPORTED", f"invalid {kind} key", shown)
            conditions[kind].add(cond)
    return Query(
        repository=single.get("repository"),
        tags=frozenset(tags) if tags else None,
        os=single.get("os"),
        architecture=single.get("architecture"),
        labels=tuple(sorted(conditions["label"], key=lambda c: (c[0], c[1] or ""))),
        annotations=tuple(sorted(conditions["annotation"], key=lambda c: (c[0], c[1] or ""))),
    )


def common_query(architecture: str, tag: str = DEFAULT_TAG) -> Query:
    """What ``flatpak remote-ls`` asks (flatpak-oci-registry.c, flatpak_oci_index_ensure_cached)."""
    return Query(tags=frozenset((tag,)), os="linux", architecture=architecture, labels=((FLATPAK_REF, None),))


# -- the precomputed entries -----------------------------------------------------------------


class Image:
    """One image manifest as the index shows it.

    A plain slotted class, not a frozen dataclass, and the JSON-ready dict is made on first use:
    a snapshot holds one per image manifest, and building them is most of the index's share of
    the metadata load time (benchmarks/flatpak_bench.py).
    """

    __slots__ = ("_doc", "architecture", "manifest", "os", "tags")

    def __init__(self, manifest: Manifest, os: str, architecture: str, tags: list[str] | None) -> None:
        self.manifest = manifest
        self.os = os
        self.architecture = architecture
        #: every tag of the image (None inside a list: the spec shows no Tags there)
        self.tags = tags

    @property
    def labels(self) -> Mapping[str, str]:
        return self.manifest.labels

    @property
    def doc(self) -> dict:
        """The ``Images[]`` entry; made once (a concurrent first use makes an equal one: harmless)."""
        try:
            return self._doc
        except AttributeError:
            pass
        m = self.manifest
        doc = {"Tags": self.tags} if self.tags is not None else {}
        doc["Digest"] = m.digest
        doc["MediaType"] = m.media_type
        doc["OS"] = self.os
        doc["Architecture"] = self.architecture
        doc["Labels"] = dict(m.labels)
        doc["Annotations"] = dict(m.annotations)
        self._doc = doc
        return doc

    def matches(self, q: Query) -> bool:
        if q.os is not None and self.os != q.os:
            return False
        if q.architecture is not None and self.architecture != q.architecture:
            return False
        m = self.manifest
        for key, value in q.labels:
            have = m.labels.get(key)
            if have is None or (value is not None and have != value):
                return False
        for key, value in q.annotations:
            have = m.annotations.get(key)
            if have is None or (value is not None and have != value):
                return False
        return True


class ImageList:
    """A tagged image list/index and its images (children without a platform are left out)."""

    __slots__ = ("digest", "images", "media_type", "tags")

    def __init__(self, digest: str, media_type: str, tags: list[str], images: tuple[Image, ...]) -> None:
        self.digest = digest
        self.media_type = media_type
        self.tags = tags
        self.images = images


class RepoEntries:
    """Everything the index can say about one repository (plain slotted classes: one per
    repository and image in every snapshot, so their construction cost counts)."""

    __slots__ = ("images", "lists", "name", "protected")

    def __init__(self, name: str, protected: bool, images: tuple[Image, ...], lists: tuple[ImageList, ...]):
        self.name = name
        self.protected = protected
        #: directly tagged images (each knows its tags)
        self.images = images
        self.lists = lists

    def result(self, q: Query) -> dict | None:
        """This repository's ``Results[]`` entry for ``q``, or None if nothing matches."""
        if q.repository is not None and q.repository != self.name:
            return None
        wanted = q.tags
        images = [
            img.doc
            for img in self.images
            if (wanted is None or not wanted.isdisjoint(img.tags)) and img.matches(q)  # type: ignore[arg-type]
        ]
        lists = []
        for lst in self.lists:
            if wanted is not None and wanted.isdisjoint(lst.tags):
                continue
            matching = [img.doc for img in lst.images if img.matches(q)]
            if matching:
                lists.append(
                    {"Tags": lst.tags, "Digest": lst.digest, "MediaType": lst.media_type, "Images": matching}
                )
        if not images and not lists:
            return None
        return {"Name": self.name, "Images": images, "Lists": lists}


def repo_entries(repo: NativeRepo) -> RepoEntries:
    """Index entries of every tagged manifest of ``repo``: tags grouped per digest, in the order of
    each digest's first tag (sorted tags, so deterministic).

    The hot loop of the index's share of every snapshot build (benchmarks/flatpak_bench.py), so
    written out flat rather than with a helper per image.
    """
    by_digest: dict[str, list[str]] = {}
    tag_map = repo.tags
    for tag in repo.sorted_tags:
        digest = tag_map[tag].digest
        grouped = by_digest.get(digest)
        if grouped is None:
            by_digest[digest] = [tag]
        else:
            grouped.append(tag)
    images = []
    lists = []
    manifests = repo.manifests
    for digest, tags in by_digest.items():
        m = manifests[digest]
        if m.children:
            children = []
            for child_digest, _mt, platform in m.children:
                child = manifests.get(child_digest)
                if child is None or child.children:
                    continue
                p = child.platform or platform  # a version-5 child: its list entry's platform
                if type(p) is MappingProxyType or type(p) is dict:  # not validated in list entries
                    os_, arch = p.get("os"), p.get("architecture")
                    if type(os_) is str and type(arch) is str:
                        children.append(Image(child, os_, arch, None))
            lists.append(ImageList(digest, m.media_type, tags, tuple(children)))
        elif m.platform is not None and m.media_type not in LIST_TYPES:
            p = m.platform
            os_, arch = p.get("os"), p.get("architecture")
            if type(os_) is str and type(arch) is str:
                images.append(Image(m, os_, arch, tags))
    return RepoEntries(repo.name, repo.protected, tuple(images), tuple(lists))


# -- rendered answers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """One answer: JSON bytes, their gzip, and the strong ETags of both representations."""

    body: bytes
    gzipped: bytes
    etag: str
    etag_gzip: str
    #: True when a protected repository contributed (then no shared cache may keep it)
    private: bool


def render(registry: str, repos: Iterable[RepoEntries], q: Query) -> Rendered:
    results = []
    private = False
    for entries in repos:
        result = entries.result(q)
        if result is not None:
            results.append(result)
            private = private or entries.protected
    # ASCII output: labels come from the build system and may hold lone surrogates, which would
    # not encode as UTF-8 (a 500); escaped, every string serialises.
    body = json.dumps({"Registry": registry, "Results": results}).encode("ascii")
    tag = hashlib.sha256(body).hexdigest()[:40]
    # mtime=0: the same document always compresses to the same bytes (one ETag for it)
    return Rendered(body, gzip.compress(body, 6, mtime=0), f'"{tag}"', f'"{tag}-gzip"', private)


@dataclass(eq=False)
class FlatpakIndex:
    """The index of one metadata snapshot. Immutable apart from its bounded answer cache."""

    registry: str = "/"
    #: every native repository's entries, sorted by name
    repos: tuple[RepoEntries, ...] = ()
    public: tuple[RepoEntries, ...] = ()
    #: NativeRepo -> its entries, so the next snapshot can reuse those of unchanged repositories
    by_repo: Mapping[NativeRepo, RepoEntries] = field(default_factory=dict)
    #: (Query, protected names visible or None) -> Rendered
    _cache: dict = field(default_factory=dict)
    #: raw query string -> Query or QueryError (parsing was 80% of a request's cost)
    _queries: dict = field(default_factory=dict)
    _cached_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def query(self, query_string: str) -> Query | QueryError:
        """:func:`parse_query` with a bounded per-snapshot cache of the raw strings clients send.

        The error is returned, not raised: re-raising one cached exception object would grow its
        traceback with every request.
        """
        hit = self._queries.get(query_string)
        if hit is None:
            try:
                hit = parse_query(query_string)
            except QueryError as exc:
                hit = exc
            if len(query_string) <= 1024:
                with self._lock:
                    if len(self._queries) >= CACHE_SIZE:
                        self._queries.clear()
                    self._queries[query_string] = hit
        return hit

    def answer(self, q: Query, visible: frozenset[str] | None) -> Rendered:
        """The answer to ``q`` for a client that may see the protected repositories in ``visible``
        (None or empty: public repositories only)."""
        key = (q, visible or None)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        repos: Iterable[RepoEntries] = self.public
        if visible:
            repos = [e for e in self.repos if not e.protected or e.name in visible]
        rendered = render(self.registry, repos, q)
        size = len(rendered.body) + len(rendered.gzipped)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE or self._cached_bytes + size > CACHE_BYTES:
                self._cache.clear()
                self._cached_bytes = 0
            self._cache[key] = rendered
            self._cached_bytes += size
        return rendered


def build_flatpak_index(
    repos: Mapping[str, object], registry: str, previous: FlatpakIndex | None = None
) -> FlatpakIndex:
    """Entries for every native repository, reusing ``previous``'s for unchanged ones."""
    old = previous.by_repo if previous is not None and previous.registry == registry else {}
    by_repo: dict[NativeRepo, RepoEntries] = {}
    entries = []
    for name in sorted(repos):
        repo = repos[name]
        if getattr(repo, "kind", None) != NATIVE:
            continue
        assert isinstance(repo, NativeRepo)
        e = old.get(repo)
        if e is None:
            e = repo_entries(repo)
        by_repo[repo] = e
        entries.append(e)
    public = tuple(e for e in entries if not e.protected)
    return FlatpakIndex(registry, tuple(entries), public, by_repo)


__all__ = [
    "FlatpakIndex",
    "Query",
    "QueryError",
    "Rendered",
    "build_flatpak_index",
    "common_query",
    "parse_query",
]
