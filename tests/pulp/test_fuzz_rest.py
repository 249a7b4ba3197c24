"""Property-based requests to the plugin's POST endpoints: never a 5xx, never a traceback.

Random JSON alone rarely gets past the first field, so the bodies mix real hrefs (a synced
repository and its version, an empty repository, the exporter itself), near-misses of them and
junk of every JSON type, field by field. This found the 500 on ``{"tags": [[]]}`` in promote
(tests/pulp/test_odd_requests.py). Bounded and deterministic: ``derandomize`` (the same examples
every run), a fixed number of examples, no example database; about 20 s against the session Pulp.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.harness.pulp import PulpServer
from tests.pulp.client import PulpApi
from tests.pulp.conftest import EXPORTERS, SyncedRepo, uid

ZERO = "00000000-0000-0000-0000-000000000000"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate],  # no shrinking: the failure message lists the bodies as sent
    suppress_health_check=list(HealthCheck),
)


class Seen:
    """What the server answered: 5xx or traceback-bearing responses, and tasks to check at the end."""

    def __init__(self) -> None:
        self.bad: list[tuple[str, int, str]] = []
        self.tasks: list[tuple[str, str]] = []

    def check(self, body: Any, resp: requests.Response) -> None:
        text = resp.text
        if resp.status_code >= 500 or "Traceback" in text or 'File "/' in text:
            self.bad.append((json.dumps(body)[:300], resp.status_code, text[:300]))
        elif resp.status_code == 202:
            self.tasks.append((json.dumps(body)[:300], resp.json()["task"]))

    def assert_clean(self, api: PulpApi) -> None:
        """No bad response; every task dispatched ended, and a failed one says why in one line."""
        for body, href in self.tasks:
            task = api.wait_task(href, check=False)
            if task["state"] == "failed":
                desc = (task.get("error") or {}).get("description") or ""
                if not desc or "\n" in desc.strip() or "Traceback" in desc:
                    self.bad.append((body, 202, f"task {href} failed with {task['error']!r}"[:600]))
        assert self.bad == [], "\n".join(repr(b) for b in self.bad)


@pytest.fixture(scope="module")
def targets(api: PulpApi, pulp: PulpServer, synced_repo: SyncedRepo) -> dict[str, str]:
    """Real hrefs to mix into the bodies: the synced repository, an empty one, an exporter."""
    empty = api.ok(api.post("repositories/container/container/", {"name": uid("fuzz-empty")}), 201)
    base = pulp.export_root / uid("fuzz")
    (base / "tree").mkdir(parents=True)
    (base / "meta").mkdir()
    exporter = api.ok(
        api.post(
            EXPORTERS,
            {
                "name": uid("fuzz"),
                "path": str(base / "tree"),
                "metadata_path": str(base / "meta"),
                "master_url": "https://dl.example.org/pub/containers/",
            },
        ),
        201,
    )
    return {
        "repo": synced_repo.href,
        "version": synced_repo.version_href,
        "empty": empty["pulp_href"],
        "empty_version": empty["latest_version_href"],
        "exporter": exporter["pulp_href"],
        "export_root": str(pulp.export_root),
    }


_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "a" * 300, "..", "/", "%s", "{value}"]),
)
_junk = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes junk of any JSON type."""
    return st.one_of(strategy, strategy, _junk)


def _hrefs(t: dict[str, str]) -> tuple[st.SearchStrategy[str], st.SearchStrategy[str]]:
    repo = st.sampled_from(
        [
            t["repo"],
            t["empty"],
            t["exporter"],
            t["repo"] + "versions/",
            t["repo"][:-1],
            t["repo"].replace("/container/container/", "/file/file/"),
            "prn:container.containerrepository:" + t["repo"].split("/")[-2],
            f"/pulp/api/v3/repositories/container/container/{ZERO}/",
        ]
    )
    version = st.sampled_from(
        [
            t["version"],
            t["empty_version"],
            t["version"].replace("/versions/1/", "/versions/-1/"),
            t["version"].replace("/versions/1/", "/versions/99999999999999999999/"),
            t["version"] + "x",
            "prn:core.repositoryversion:" + ZERO,
        ]
    )
    return repo, version


_tag = st.one_of(
    st.sampled_from(["latest", "41", "x" * 128, "x" * 129, "-a", ".a", "a b", "ünï"]), st.text(max_size=8)
)
_digest = st.one_of(
    st.just("sha256:" + "0" * 64),
    st.just("SHA256:" + "0" * 64),
    st.just("sha512:" + "0" * 128),
    st.text(max_size=8),
)


def test_promote_never_500(api: PulpApi, targets: dict[str, str]) -> None:
    repo, version = _hrefs(targets)
    body = st.fixed_dictionaries(
        {},
        optional={
            "source_repository": _maybe(repo),
            "source_repository_version": _maybe(version),
            "destination_repository": _maybe(st.just(targets["empty"]) | repo),
            "tags": _maybe(st.lists(_maybe(_tag), max_size=3)),
            "digest": _maybe(_digest),
            "aliases": _maybe(st.lists(_maybe(_tag), max_size=3)),
        },
    )
    seen = Seen()

    @FUZZ
    @given(body)
    def run(b: dict[str, Any]) -> None:
        seen.check(b, api.post("fedora_mirror/promote/", b))

    run()
    seen.assert_clean(api)


def test_export_never_500(api: PulpApi, targets: dict[str, str]) -> None:
    repo, version = _hrefs(targets)
    names = st.sampled_from(["fuzz/a", "a", "A", "a//b", "a/", "x" * 250, "../a"]) | st.text(max_size=12)
    body = _junk | st.fixed_dictionaries(
        {},
        optional={"repository": _maybe(repo), "repository_version": _maybe(version), "name": _maybe(names)},
    )
    seen = Seen()

    @FUZZ
    @given(body)
    def run(b: Any) -> None:
        seen.check(b, api.request("post", targets["exporter"] + "exports/", json=b))

    run()
    seen.assert_clean(api)


def test_prune_and_exporter_changes_never_500(api: PulpApi, targets: dict[str, str]) -> None:
    root = targets["export_root"]
    paths = st.sampled_from([root, f"{root}/fz/tree", f"{root}/../etc", "/", "rel", f"{root}/fz/\x00"])
    urls = st.sampled_from(
        ["https://dl.example.org/x/", "http://a", "https://[::1]/", "https://a:99999/", "http://["]
    )
    exporter_body = st.fixed_dictionaries(
        {},
        optional={
            "name": _maybe(st.text(max_size=12)),
            "path": _maybe(paths | st.text(max_size=12)),
            "metadata_path": _maybe(paths),
            "master_url": _maybe(urls | st.text(max_size=12)),
            "mirror_url": _maybe(urls),
            "module": _maybe(st.text(max_size=12)),
            "prune_grace": _maybe(st.integers(-(2**40), 2**40)),
            "allow_protected": _maybe(st.booleans()),
        },
    )
    prune_body = _junk | st.fixed_dictionaries({}, optional={"dry_run": _maybe(st.booleans())})
    seen = Seen()
    created: list[str] = []

    @FUZZ
    @given(st.sampled_from(["create", "patch", "prune"]), exporter_body, prune_body)
    def run(op: str, body: dict[str, Any], prune: Any) -> None:
        if op == "create":
            resp = api.post(EXPORTERS, body)
            if resp.status_code == 201:
                created.append(resp.json()["pulp_href"])
                return
        elif op == "patch":
            resp = api.patch(targets["exporter"], body)
        else:
            resp = api.request("post", targets["exporter"] + "prune/", json=prune)
            body = prune
        seen.check(body, resp)

    run()
    seen.assert_clean(api)
    for href in created:
        api.run(api.delete(href))
