"""What the browsable pages show, computed from the metadata snapshot once, never per request.

Why a summary layer: the pages need facts the registry API never looks at (compressed sizes from
the manifests' descriptors, platforms of index children, publish times, signatures, Flatpak refs).
Parsing manifest bodies per request would cost milliseconds per repository. Here every repository
object is summarised once; the store keeps an unchanged file's repository object across reloads,
so a reload re-summarises only the repositories whose files changed. The per-tag table of one
repository (up to thousands of rows) is built on its first view and kept with that object.

Nothing here guesses: a fact the snapshot does not hold (a Pulp 2 repository's sizes, a version-5
file's signatures) is ``None`` and the page says "unknown".
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from crane_fedora.metadata.index import Index
from crane_fedora.metadata.model import NATIVE, Manifest, NativeRepo, Pulp2Repo, Repo
from pulp_fedora_mirror.layout import ANY_DIGEST_RE

log = logging.getLogger(__name__)

#: ``org.flatpak.ref``: ``app|runtime/<id>/<arch>/<branch>``. Only a ref matching this becomes a
#: ``flatpak install`` command (labels come from the build system; a command must be paste-safe).
FLATPAK_REF_RE = re.compile(
    r"^(app|runtime)/([A-Za-z0-9_][A-Za-z0-9_.-]*)/([A-Za-z0-9_]+)/([A-Za-z0-9_.-]+)\Z"
)
FLATPAK_LABEL = "org.flatpak.ref"
#: Details of at most this many repositories are kept per process (each one is one page's table).
DETAILS_CACHE = 512
#: Rendered pages kept per snapshot (catalog pages and searches, repository pages, help).
PAGE_CACHE = 2048


@dataclass(frozen=True, slots=True)
class FlatpakRef:
    """A validated ``org.flatpak.ref`` label."""

    kind: str
    app_id: str
    arch: str
    branch: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.app_id}/{self.arch}/{self.branch}"


def parse_flatpak_ref(value: str | None) -> FlatpakRef | None:
    """The ref of a label, or None if absent or not a well-formed ref."""
    if not value:
        return None
    m = FLATPAK_REF_RE.match(value)
    return FlatpakRef(*m.groups()) if m else None


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """One image manifest: what a row of the tag table says about it."""

    digest: str
    #: ``os/architecture[/variant]`` from the index entry or the image config; None if unknown
    platform: str | None
    #: compressed size: config + layers from the manifest's descriptors; None if unreadable
    size: int | None
    #: Unix time at which the last of its blobs appeared on the master mirror; None if none known
    published: float | None
    signed: bool
    flatpak: FlatpakRef | None
    created: str | None
    #: (digest, size) of config and layers, for de-duplicated totals
    descriptors: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class TagRow:
    """One tag on a repository page."""

    tag: str
    #: None for Pulp 2 repositories (their metadata has no manifests)
    digest: str | None
    is_list: bool
    #: the image itself, or a list's children that are real platforms (attestations left out)
    images: tuple[ImageFacts, ...]
    published: float | None
    #: the tagged manifest carries signatures (what ``podman pull <name>:<tag>`` verifies)
    signed: bool
    flatpaks: tuple[FlatpakRef, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(i.size for i in self.images if i.size is not None))


@dataclass(frozen=True, slots=True)
class RepoSummary:
    """One catalog row."""

    name: str
    #: first path component (``fedora`` of ``fedora/busybox``); "" for a one-component name
    group: str
    protected: bool
    kind: str
    tag_count: int
    #: compressed size of every distinct blob its manifests reference; None if unknown
    size: int | None
    published: float | None
    platforms: tuple[str, ...]
    flatpak: bool
    signed: bool


@dataclass(frozen=True, slots=True)
class RepoDetails:
    """A repository page's table: every tag, sorted newest first, then by name."""

    summary: RepoSummary
    tags: tuple[TagRow, ...]
    flatpaks: tuple[tuple[str, FlatpakRef], ...]  # (tag, ref), one per distinct ref


def _platform_label(platform: object) -> str | None:
    """``os/arch[/variant]``, or None; a list entry's platform is whatever the body said (any JSON)."""
    if not isinstance(platform, Mapping):
        return None
    os_, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    if os_ == "unknown" and arch == "unknown":  # buildkit attestations, not a platform
        return None
    variant = platform.get("variant")
    return f"{os_}/{arch}/{variant}" if isinstance(variant, str) and variant else f"{os_}/{arch}"


def _descriptors(m: Manifest, blobs: Mapping) -> tuple[tuple[str, int], ...]:
    """Config and layer (digest, size) from the body; the metadata's blob sizes if it will not parse."""
    try:
        body = json.loads(m.body.decode("utf-8"))
        items = [body["config"], *body.get("layers", [])]
        out = tuple((str(d["digest"]), int(d["size"])) for d in items)
        if all(size >= 0 for _d, size in out):
            return out
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    return tuple((d, blobs[d][0]) for d in m.blobs if d in blobs)


def _image_facts(m: Manifest, platform: Mapping | None, blobs: Mapping) -> ImageFacts:
    descriptors = _descriptors(m, blobs)
    times = [blobs[d][1] for d in m.blobs if d in blobs]
    label = _platform_label(platform) or _platform_label(m.platform)
    return ImageFacts(
        digest=m.digest,
        platform=label,
        size=sum(s for _d, s in descriptors) if descriptors or not m.blobs else None,
        published=max(times) if times else None,
        signed=bool(m.signatures),
        flatpak=parse_flatpak_ref(m.labels.get(FLATPAK_LABEL) or m.annotations.get(FLATPAK_LABEL)),
        created=m.created,
        descriptors=descriptors,
    )


def _images_of(m: Manifest, repo: NativeRepo, facts: dict) -> tuple[ImageFacts, ...]:
    """The image itself, or the list's platform children present in the repository."""
    if not m.children:
        key = (m.digest, None)
        if key not in facts:
            facts[key] = _image_facts(m, None, repo.blobs)
        return (facts[key],)
    out = []
    for digest, _mt, platform in m.children:
        child = repo.manifests.get(digest)
        if child is None or child.children or _platform_label(platform) is None:
            continue
        key = (digest, _platform_label(platform))
        if key not in facts:
            facts[key] = _image_facts(child, platform, repo.blobs)
        out.append(facts[key])
    return tuple(out)


def _group(name: str) -> str:
    return name.split("/", 1)[0] if "/" in name else ""


def _pulp2_tags(repo: Pulp2Repo) -> list[str]:
    names = repo.schema2_data | repo.manifest_list_data | frozenset(repo.amd64_tags)
    return sorted(n for n in names if not ANY_DIGEST_RE.match(n))


def summarize(repo: Repo) -> RepoSummary:
    """The catalog row of one repository: parses each image body once, builds no per-tag rows."""
    if repo.kind != NATIVE:
        assert isinstance(repo, Pulp2Repo)
        tags = len(_pulp2_tags(repo))
        return RepoSummary(
            repo.name, _group(repo.name), repo.protected, repo.kind, tags, None, None, (), False, False
        )
    assert isinstance(repo, NativeRepo)
    sizes: dict[str, int] = {}
    platforms: set[str] = set()
    flatpak = False
    manifests = repo.manifests
    for m in manifests.values():
        if m.children:
            for digest, _mt, platform in m.children:
                if digest in manifests:
                    label = _platform_label(platform)
                    if label:
                        platforms.add(label)
            continue
        sizes.update(_descriptors(m, repo.blobs))
        if m.platform is not None:
            label = _platform_label(m.platform)
            if label:
                platforms.add(label)
        if not flatpak and (m.labels or m.annotations):
            ref = m.labels.get(FLATPAK_LABEL) or m.annotations.get(FLATPAK_LABEL)
            flatpak = parse_flatpak_ref(ref) is not None
    times = [p for _s, p in repo.blobs.values()]
    return RepoSummary(
        name=repo.name,
        group=_group(repo.name),
        protected=repo.protected,
        kind=repo.kind,
        tag_count=len(repo.tags),
        size=sum(sizes.values()) if manifests else None,
        published=max(times) if times else None,
        platforms=tuple(sorted(platforms)),
        flatpak=flatpak,
        signed=any(m.signatures for m in repo.tags.values()),
    )


def details(repo: Repo, summary: RepoSummary) -> RepoDetails:
    """Every tag row of one repository."""
    if repo.kind != NATIVE:
        assert isinstance(repo, Pulp2Repo)
        rows = tuple(TagRow(t, None, False, (), None, False, ()) for t in _pulp2_tags(repo))
        return RepoDetails(summary, rows, ())
    assert isinstance(repo, NativeRepo)
    facts: dict = {}
    per_manifest: dict[str, tuple] = {}
    rows = []
    for tag in repo.sorted_tags:
        m = repo.tags[tag]
        known = per_manifest.get(m.digest)
        if known is None:
            images = _images_of(m, repo, facts)
            times = [i.published for i in images if i.published is not None]
            refs = tuple(dict.fromkeys(i.flatpak for i in images if i.flatpak is not None))
            known = per_manifest[m.digest] = (images, max(times) if times else None, refs)
        images, published, refs = known
        rows.append(TagRow(tag, m.digest, bool(m.children), images, published, bool(m.signatures), refs))
    rows.sort(key=lambda r: (-(r.published or 0), r.tag))
    seen: dict[str, tuple[str, FlatpakRef]] = {}
    for row in rows:
        for ref in row.flatpaks:
            seen.setdefault(ref.ref, (row.tag, ref))
    return RepoDetails(summary, tuple(rows), tuple(seen.values()))


def _safe_summary(repo: Repo) -> RepoSummary:
    """:func:`summarize`, or a row of unknowns: one odd file must not stop a startup or a reload."""
    try:
        return summarize(repo)
    except Exception:
        log.exception("home page: cannot summarise %r; listing it without facts", repo.name)
        tags = len(repo.tags) if isinstance(repo, NativeRepo) else len(_pulp2_tags(repo))  # type: ignore[arg-type]
        return RepoSummary(
            repo.name, _group(repo.name), repo.protected, repo.kind, tags, None, None, (), False, False
        )


def _bare_details(repo: Repo, summary: RepoSummary) -> RepoDetails:
    if not isinstance(repo, NativeRepo):
        return RepoDetails(
            summary, tuple(TagRow(t, None, False, (), None, False, ()) for t in _pulp2_tags(repo)), ()
        )
    rows = tuple(
        TagRow(
            t, repo.tags[t].digest, bool(repo.tags[t].children), (), None, bool(repo.tags[t].signatures), ()
        )
        for t in repo.sorted_tags
    )
    return RepoDetails(summary, rows, ())


@dataclass(frozen=True, slots=True)
class Catalog:
    """The summaries of one snapshot (``index``), by name."""

    index: Index
    summaries: Mapping[str, RepoSummary]
    #: ``<urls.master>signatures`` when every native repository has the same master, else ""
    lookaside: str
    #: rendered pages of this snapshot: key -> (body, etag); dropped with the snapshot
    pages: PageCache = field(default_factory=lambda: PageCache())


class PageCache:
    """A bounded map of rendered pages. Why: rendering 100 catalog rows costs milliseconds and the
    answer only changes with the snapshot; arbitrary search strings cannot grow it without bound."""

    def __init__(self, limit: int = PAGE_CACHE) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._pages: OrderedDict[tuple, tuple[bytes, str]] = OrderedDict()

    def get(self, key: tuple) -> tuple[bytes, str] | None:
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None:
                self._pages.move_to_end(key)
            return hit

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()

    def put(self, key: tuple, value: tuple[bytes, str]) -> None:
        with self._lock:
            self._pages[key] = value
            while len(self._pages) > self.limit:
                self._pages.popitem(last=False)


class SummaryCache:
    """Per-application cache: the :class:`Catalog` of the current index, rebuilt when it changes.

    Repository summaries are reused across snapshots while the name maps to the same repository
    object, so a reload that re-parsed one file re-summarises one repository.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._details: OrderedDict[int, tuple[Repo, RepoDetails]] = OrderedDict()

    def catalog(self, index: Index) -> Catalog:
        """The catalog of ``index`` (built on the first call for that snapshot)."""
        current = self._catalog
        if current is not None and current.index is index:
            return current
        with self._lock:
            current = self._catalog
            if current is not None and current.index is index:
                return current
            # An unchanged file keeps its repository object: reuse its summary (one dict look-up).
            old_repos = current.index.repos if current is not None else {}
            old = current.summaries if current is not None else {}
            summaries: dict[str, RepoSummary] = {}
            masters = set()
            for name, repo in index.repos.items():
                summaries[name] = old[name] if old_repos.get(name) is repo else _safe_summary(repo)
                if repo.kind == NATIVE:
                    masters.add(repo.master)  # type: ignore[union-attr]
            lookaside = f"{next(iter(masters))}signatures" if len(masters) == 1 else ""
            self._catalog = Catalog(index, summaries, lookaside)
            return self._catalog

    def details(self, repo: Repo, summary: RepoSummary) -> RepoDetails:
        """The tag table of ``repo`` (built on its first view, kept for its lifetime in the cache)."""
        key = id(repo)
        with self._lock:
            hit = self._details.get(key)
            if hit is not None and hit[0] is repo:
                self._details.move_to_end(key)
                return hit[1]
        try:
            built = details(repo, summary)
        except Exception:  # facts the parser let through but this code did not expect: tags only
            log.exception("home page: cannot tabulate the tags of %r; showing them without facts", repo.name)
            built = _bare_details(repo, summary)
        with self._lock:
            self._details[key] = (repo, built)
            while len(self._details) > DETAILS_CACHE:
                self._details.popitem(last=False)
        return built
