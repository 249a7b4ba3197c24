"""The immutable index of all repositories, rebuilt from per-file snapshots and swapped whole."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from types import MappingProxyType

from crane_fedora.metadata.flatpak import FlatpakIndex, build_flatpak_index
from crane_fedora.metadata.model import NATIVE, Repo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Index:
    """Everything a request reads, built once per change; requests keep the one they started with."""

    repos: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    #: sorted names of unprotected repositories (the anonymous catalog)
    public_names: tuple[str, ...] = ()
    #: sorted names of every repository (the catalog filtered per client when some are protected)
    all_names: tuple[str, ...] = ()
    files: int = 0
    errors: int = 0
    native: int = 0
    pulp2: int = 0
    loaded_at: float = 0.0
    #: name -> (path served, paths ignored), for names defined by several files
    duplicates: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    #: the Flatpak registry index (metadata/flatpak.py), None when ``[flatpak] index`` is off
    flatpak: FlatpakIndex | None = None


def _rank(repo: Repo) -> tuple[int, str]:
    """Duplicate rule: native v5 beats Pulp 2, then the lexicographically first relative path wins."""
    return (0 if repo.kind == NATIVE else 1, repo.path)


def build_index(
    repos: list[Repo],
    files: int,
    errors: int,
    *,
    flatpak_registry: str | None = None,
    previous: Index | None = None,
) -> Index:
    """Resolve duplicate names deterministically and precompute the name lists.

    With ``flatpak_registry`` (the index's ``Registry`` value) the Flatpak index is built too,
    reusing ``previous``'s entries for repositories that did not change.
    """
    by_name: dict[str, Repo] = {}
    losers: dict[str, list[Repo]] = {}
    for repo in repos:
        current = by_name.get(repo.name)
        if current is None:
            by_name[repo.name] = repo
            continue
        if _rank(repo) < _rank(current):
            by_name[repo.name], repo = repo, current
        losers.setdefault(repo.name, []).append(repo)
    duplicates = {
        name: (by_name[name].path, tuple(sorted(r.path for r in lost)))
        for name, lost in sorted(losers.items())
    }
    all_names = tuple(sorted(by_name))
    return Index(
        repos=MappingProxyType(by_name),
        public_names=tuple(n for n in all_names if not by_name[n].protected),
        all_names=all_names,
        files=files,
        errors=errors,
        native=sum(1 for r in by_name.values() if r.kind == NATIVE),
        pulp2=sum(1 for r in by_name.values() if r.kind != NATIVE),
        loaded_at=time.time(),
        duplicates=MappingProxyType(duplicates),
        flatpak=None
        if flatpak_registry is None
        else build_flatpak_index(by_name, flatpak_registry, previous.flatpak if previous else None),
    )


def log_new_duplicates(old: Index, new: Index) -> None:
    """Warn once per duplicate situation, not at every rebuild while it lasts."""
    for name, (winner, losers) in new.duplicates.items():
        if old.duplicates.get(name) != (winner, losers):
            log.warning(
                "duplicate repository %r: serving %s, ignoring %s (native v5 beats Pulp 2, then first path)",
                name,
                winner,
                ", ".join(losers),
            )
