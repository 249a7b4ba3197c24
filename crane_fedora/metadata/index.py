"""The immutable index of all repositories, rebuilt from per-file snapshots and swapped whole."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from types import MappingProxyType

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


def _rank(repo: Repo) -> tuple[int, str]:
    """Duplicate rule: native v5 beats Pulp 2, then the lexicographically first relative path wins."""
    return (0 if repo.kind == NATIVE else 1, repo.path)


def build_index(repos: list[Repo], files: int, errors: int) -> Index:
    """Resolve duplicate names deterministically (with a warning) and precompute the name lists."""
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
    for name, lost in sorted(losers.items()):
        log.warning(
            "duplicate repository %r: serving %s, ignoring %s (native v5 beats Pulp 2, then first path)",
            name,
            by_name[name].path,
            ", ".join(sorted(r.path for r in lost)),
        )
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
    )
