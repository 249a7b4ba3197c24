"""Parse Pulp 2 Crane files, versions 2-4 (``shared/reference/crane.md`` §3).

Version 1 (the dead v1 API) is recognised and skipped by the caller with one log line.
"""

from __future__ import annotations

from types import MappingProxyType

from crane_fedora.config import Config
from crane_fedora.metadata.model import Pulp2Repo, require, url_problem
from pulp_fedora_mirror.layout import is_valid_digest, is_valid_name


def _str_list(doc: dict, key: str) -> frozenset[str]:
    value = doc.get(key, [])
    require(
        isinstance(value, list) and all(isinstance(v, str) for v in value), f"{key} must be a list of strings"
    )
    return frozenset(value)


def parse_pulp2(doc: dict, path: str, config: Config) -> Pulp2Repo:
    """Build a :class:`Pulp2Repo` from a version 2, 3 or 4 document."""
    version = doc["version"]
    name = doc.get("repo-registry-id")
    require(isinstance(name, str) and is_valid_name(name), f"invalid repo-registry-id {name!r}")
    url = doc.get("url")
    require(
        isinstance(url, str) and url.startswith(("https://", "http://")),
        f"url must be an http(s) URL: {url!r}",
    )
    assert isinstance(url, str)
    problem = url_problem(url)
    require(problem is None, f"url {problem}: {url!r}")
    if not url.endswith("/"):
        url += "/"
    if config.allowed_url_prefixes:
        require(
            url.startswith(config.allowed_url_prefixes),
            f"url {url!r} is not under [mirrors] allowed_url_prefixes",
        )
    repository = doc.get("repository")
    require(isinstance(repository, str) and repository, "repository is required")
    amd64: dict[str, tuple[str, int]] = {}
    if version >= 3:
        schema2 = _str_list(doc, "schema2_data")
    else:
        schema2 = frozenset()
    if version >= 4:
        lists = _str_list(doc, "manifest_list_data")
        raw = doc.get("manifest_list_amd64_tags", {})
        require(isinstance(raw, dict), "manifest_list_amd64_tags must be an object")
        for tag, value in raw.items():
            require(
                isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], str)
                and value[1] in (1, 2),
                f"manifest_list_amd64_tags[{tag!r}] must be [digest, 1 or 2]",
            )
            require(is_valid_digest(value[0]), f"manifest_list_amd64_tags[{tag!r}]: bad digest")
            amd64[tag] = (value[0], value[1])
    else:
        lists = frozenset()
    return Pulp2Repo(
        name=name,  # type: ignore[arg-type]
        path=path,
        protected=bool(doc.get("protected", False)),  # Crane tested truthiness
        version=version,
        url=url,
        repository=repository,  # type: ignore[arg-type]
        schema2_data=schema2,
        manifest_list_data=lists,
        amd64_tags=MappingProxyType(amd64),
    )
