"""The browsable pages (``/``, ``/r/<name>``, ``/help``): facts, escaping, HTTP, protection.

Flask's test client against real metadata files from :mod:`tests.crane.builder`; the same pages
in a real browser are ``tests/browser``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import pytest

from crane_fedora.config import ConfigError, parse_config
from crane_fedora.ui import summary as summary_mod
from crane_fedora.views.ui import registry_name

from .builder import OLD, Native
from .conftest import refresh

DN = "CN=builder.example.org,O=Fedora Project"
PROTECTED_CFG = f"""[protected]
trusted_proxies = 127.0.0.1/32
allow =
    secret/* {DN}
"""
REGISTRY_CFG = "[ui]\nregistry = registry.example.org\n"


def write_v6(native: Native, data_dir: Path) -> Path:
    """``native`` as a version-6 file (the builder writes version 5)."""
    doc = native.doc()
    doc["version"] = 6
    path = data_dir / (native.name + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def sig(n: int) -> dict:
    return {"index": n, "content": base64.b64encode(f"signature {n}".encode()).decode()}


def flatpak_repo(data_dir: Path, *, label: str = "app/org.test.Hello/x86_64/stable") -> dict[str, str]:
    """``fedora/hello``: a signed Flatpak image with version-6 platform, labels and created."""
    n = Native("fedora/hello")
    d = n.image("hello", published=OLD + 7200)
    n.manifests[d].update(
        platform={"os": "linux", "architecture": "amd64"},
        labels={"org.flatpak.ref": label, "org.flatpak.metadata": "[Application]\nname=org.test.Hello\n"},
        created="2026-11-29T01:40:00Z",
        signatures=[sig(1)],
    )
    n.tag("stable", d)
    write_v6(n, data_dir)
    return {"image": d}


def text(resp) -> str:
    return resp.get_data(as_text=True)


def test_catalog_lists_repositories_with_facts(make_app, repo, pulp2_dir, data_dir):
    native, _d = repo
    flatpak_repo(data_dir)
    app = make_app(REGISTRY_CFG)
    r = app.test_client().get("/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    page = text(r)
    for name in ("fedora/busybox", "fedora/hello", "fedora/legacy"):
        assert f'href="/r/{name}"' in page or name not in app.extensions["crane_fedora"].store.index.repos
    assert 'href="/r/fedora/busybox"' in page and 'href="/r/fedora/hello"' in page
    # grouped by first path component
    assert re.search(r"<h2 id=\"g\d+\">fedora</h2>", page)
    # busybox: every distinct config/layer descriptor of every image, counted once
    sizes = {}
    for m in native.manifests.values():
        if "blobs" in m:
            body = json.loads(m["body"])
            for desc in [body["config"], *body["layers"]]:
                sizes[desc["digest"]] = desc["size"]
    row = page.split('href="/r/fedora/busybox"', 1)[1].split("</tr>", 1)[0]
    assert f"<td>{len(native.tags)}</td>" in row
    assert f"{sum(sizes.values())} B" in row
    assert "linux/amd64, linux/arm64/v8, linux/s390x" in row
    assert "2096-10-02 07:06 UTC" in row  # the "fresh" image's blobs: the newest publish time
    hello = page.split('href="/r/fedora/hello"', 1)[1].split("</tr>", 1)[0]
    assert "Flatpak" in hello and "Signed" in hello and "linux/amd64" in hello


def test_search_narrows_and_pages(make_app, data_dir):
    for i in range(5):
        n = Native(f"fedora/app{i}")
        n.tag("latest", n.image("x"))
        n.write(data_dir)
    n = Native("other/tool")
    n.tag("latest", n.image("x"))
    n.write(data_dir)
    c = make_app("[ui]\npage_size = 2\n").test_client()
    page = text(c.get("/?q=APP"))
    assert "5 repositories matching “APP”, 1\u20132 shown." in page
    assert "fedora/app0" in page and "fedora/app1" in page and "fedora/app2" not in page
    assert 'href="/?q=APP&amp;page=2"' in page and "Page 1 of 3" in page
    page = text(c.get("/?q=APP&page=3"))
    assert "fedora/app4" in page and "fedora/app0" not in page and 'rel="prev"' in page
    assert "Page 3 of 3" in text(c.get("/?q=app&page=99"))  # too big: the last page
    assert "Page 1 of 3" in text(c.get("/?q=app&page=x"))  # junk: the first
    page = text(c.get("/?q=tool"))
    assert "other/tool" in page and "fedora/app" not in page and "1 repository matching" in page
    page = text(c.get("/?q=nothing-like-this"))
    assert "No repository name contains “nothing-like-this”" in page


def test_repository_page(make_app, repo, data_dir):
    native, d = repo
    flatpak_repo(data_dir)
    c = make_app(REGISTRY_CFG).test_client()
    page = text(c.get("/r/fedora/busybox"))
    assert "<h1>fedora/busybox</h1>" in page
    assert 'id="pull-cmd" data-copy>podman pull registry.example.org/fedora/busybox:latest</code>' in page
    for tag in native.tags:
        assert f'<th scope="row">{tag}</th>' in page
        assert f"podman pull registry.example.org/fedora/busybox:{tag}</code>" in page
    # full digest in the page (shortened by CSS only), platforms of the index children
    latest = page.split('id="tag-latest"', 1)[1].split("</tr>", 1)[0]
    assert d["index"] in latest and "linux/arm64/v8" in latest and "linux/amd64" in latest
    assert "No" in latest  # not signed
    # newest first
    assert page.index('id="tag-fresh"') < page.index('id="tag-latest"')
    hello = text(c.get("/r/fedora/hello"))
    assert '<span class="badge signed">Signed</span>' in hello
    assert "flatpak install fedora app/org.test.Hello/x86_64/stable</code>" in hello
    assert "flatpak remote-add --if-not-exists fedora oci+https://registry.example.org</code>" in hello
    assert '<th scope="row">org.test.Hello</th><td>stable</td><td>x86_64</td>' in hello
    stable = hello.split('id="tag-stable"', 1)[1].split("</tr>", 1)[0]
    assert "linux/amd64" in stable  # the version-6 platform of a single image


def test_repository_tags_paginated(make_app, data_dir):
    n = Native("fedora/many")
    for i in range(5):
        n.tag(f"t{i}", n.image(str(i), published=OLD + i))
    n.write(data_dir)
    c = make_app("[ui]\npage_size = 2\n").test_client()
    page = text(c.get("/r/fedora/many"))
    assert 'id="tag-t4"' in page and 'id="tag-t3"' in page and 'id="tag-t2"' not in page
    assert 'href="/r/fedora/many?page=2"' in page
    assert 'id="tag-t0"' in text(c.get("/r/fedora/many?page=3"))


def test_pulp2_repository_page(make_app, pulp2_dir):
    c = make_app().test_client()
    assert 'href="/r/fedora/pulp2-busybox"' in text(c.get("/"))
    page = text(c.get("/r/fedora/pulp2-busybox"))
    for tag in ("latest", "old-list", "v2tag"):  # tag names from the lists, digests left out
        assert f"podman pull localhost/fedora/pulp2-busybox:{tag}</code>" in page
    assert page.count('<tr id="tag-') == 3
    assert "<dt>Total size</dt><dd>unknown</dd>" in page


def test_unknown_and_protected_repositories_look_the_same(make_app, data_dir, repo):
    for name in ("secret/native", "open/repo"):
        n = Native(name, protected=name != "open/repo")
        n.tag("latest", n.image("1"))
        n.write(data_dir)
    app = make_app(PROTECTED_CFG)
    c = app.test_client()
    anonymous = text(c.get("/"))
    assert "secret/native" not in anonymous and "open/repo" in anonymous
    assert c.get("/").headers["Cache-Control"].startswith("public")
    denied, unknown = c.get("/r/secret/native"), c.get("/r/secret/nothere")
    assert denied.status_code == unknown.status_code == 404
    assert text(denied).replace("native", "X") == text(unknown).replace("nothere", "X")
    assert "secret/native" not in text(c.get("/?q=secret"))
    assert "secret/native" not in text(c.get("/help"))
    # an allowed client (DN from a trusted proxy) sees it, in pages marked private
    allowed = {"headers": {"X-SSL-Client-DN": DN}, "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    r = c.get("/", **allowed)
    assert "secret/native" in text(r) and "Restricted" in text(r)
    assert r.headers["Cache-Control"].startswith("private")
    assert "X-SSL-Client-DN" in r.headers["Vary"]
    r = c.get("/r/secret/native", **allowed)
    assert r.status_code == 200 and r.headers["Cache-Control"].startswith("private")
    # a DN the rules do not admit sees the anonymous view; so does an untrusted peer
    other = {"headers": {"X-SSL-Client-DN": "CN=x"}, "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}
    assert "secret/native" not in text(c.get("/", **other))
    spoof = {"headers": {"X-SSL-Client-DN": DN}, "environ_base": {"REMOTE_ADDR": "10.0.0.1"}}
    assert c.get("/r/secret/native", **spoof).status_code == 404


def test_http_headers_etag_and_head(make_app, repo):
    c = make_app().test_client()
    for path in ("/", "/r/fedora/busybox", "/help"):
        r = c.get(path)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert re.match(r"public, max-age=60$", r.headers["Cache-Control"])
        etag = r.headers["ETag"]
        again = c.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b""
        assert c.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
        head = c.head(path)
        assert head.status_code == 200 and head.data == b"" and head.headers["ETag"] == etag
        page = text(r)
        # the CSP forbids inline code: the pages must not need it
        assert "<style" not in page and " style=" not in page
        assert re.findall(r"<script[^>]*>", page) == [re.search(r"<script src=\"[^\"]+\" defer>", page)[0]]
        assert not re.search(r"\son[a-z]+=", page)
        # every asset is local and cacheable for good under its versioned URL
        for url in re.findall(r"(?:href|src)=\"(/-/static/[^\"]+)\"", page):
            a = c.get(url.replace("&amp;", "&"))
            assert a.status_code == 200 and "immutable" in a.headers["Cache-Control"]
        assert not re.search(r"(?:href|src)=\"(?:https?:)?//", page)
    assert c.get("/-/static/nothing.css").status_code == 404
    assert c.get("/-/static/ui.css").headers["Cache-Control"] == "public, max-age=300"


def test_etag_changes_with_the_snapshot(make_app, data_dir, repo):
    app = make_app()
    c = app.test_client()
    etag = c.get("/").headers["ETag"]
    n = Native("fedora/newcomer")
    n.tag("latest", n.image("1"))
    n.write(data_dir)
    refresh(app)
    r = c.get("/", headers={"If-None-Match": etag})
    assert r.status_code == 200 and "fedora/newcomer" in text(r)


@pytest.mark.parametrize("accept", ["text/html", "*/*", None])
def test_registry_api_never_answers_html(make_app, repo, accept):
    c = make_app().test_client()
    headers = {"Accept": accept} if accept else {}
    for path in ("/v2/", "/v2", "/v2/fedora/busybox/tags/list", "/v2/nothere/manifests/x", "/v2/_catalog"):
        r = c.get(path, headers=headers)
        assert "text/html" not in r.headers.get("Content-Type", ""), path
        assert b"<html" not in r.data.lower() and b"<!doctype" not in r.data.lower(), path
    assert c.get("/v2/fedora/busybox/tags/list").json["tags"]
    # other non-UI paths keep their JSON 404
    r = c.get("/nothing/here")
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"


def test_disabled_ui_answers_as_before(make_app, repo):
    c = make_app("[ui]\nenable = false\n").test_client()
    for path in ("/", "/r/fedora/busybox", "/help", "/-/static/ui.css"):
        r = c.get(path)
        assert r.status_code == 404 and r.headers["Content-Type"] == "application/json", path
    assert c.get("/v2/").status_code == 200


def test_registry_name_sources(make_app, repo):
    # configured name wins, no Vary: Host
    r = make_app(REGISTRY_CFG).test_client().get("/r/fedora/busybox", headers={"Host": "other.example"})
    assert "podman pull registry.example.org/fedora/busybox:latest" in text(r)
    assert "Host" not in r.headers.get("Vary", "")
    # then Crane's [general] endpoint
    cfg = parse_config("[general]\nendpoint = crane.example.org:8443\n")
    assert registry_name(cfg, {"HTTP_HOST": "other.example"}) == ("crane.example.org:8443", False)
    cfg = parse_config("[general]\nendpoint = https://not-a-host/\n")
    assert registry_name(cfg, {"HTTP_HOST": "other.example"}) == ("other.example", True)
    # then the Host header, if it is a plain host[:port]; the page then varies on Host
    c = make_app().test_client()
    r = c.get("/r/fedora/busybox", headers={"Host": "127.0.0.1:5000"})
    assert "podman pull 127.0.0.1:5000/fedora/busybox:latest" in text(r) and r.headers["Vary"] == "Host"
    for bad in ('evil.com"><script>alert(1)</script>', "evil.com/$(rm -rf ~)", "a b", "x;reboot"):
        page = text(c.get("/r/fedora/busybox", headers={"Host": bad}))
        assert "podman pull localhost/fedora/busybox:latest" in page, bad
        assert "evil" not in page and "reboot" not in page


def test_config_validation():
    assert parse_config("").ui_enable is True
    cfg = parse_config("[ui]\nregistry = [::1]:5000\npage_size = 50\nflatpak_remote = fedora-testing\n")
    assert (cfg.ui_registry, cfg.ui_page_size, cfg.ui_flatpak_remote) == ("[::1]:5000", 50, "fedora-testing")
    for bad, message in [
        ("registry = https://registry.example.org", "[ui] registry"),
        ("registry = a b", "[ui] registry"),
        ("flatpak_remote = a;b", "[ui] flatpak_remote"),
        ("page_size = 0", "[ui] page_size"),
        ("page_size = 5000", "[ui] page_size"),
        ("signing_key = file:///etc/key", "[ui] signing_key"),
        ("lookaside = not a url", "[ui] lookaside"),
        # The one URL rule (layout.url_problem): a password would be shown on /help, a query or
        # fragment breaks the lookaside's appended paths and the pasted `curl` command.
        ("signing_key = https://user:pw@keys.example.org/key", "[ui] signing_key must not contain user"),
        ("signing_key = https://keys.example.org/key?a=1&b=2", "[ui] signing_key must not contain a query"),
        ("lookaside = https://dl.example.org/sigs#x", "[ui] lookaside must not contain a query"),
        ("lookaside = https:///sigs", "[ui] lookaside must name a host"),
        ("enable = perhaps", "[ui] enable"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(f"[ui]\n{bad}\n")


def test_help_page_from_config(make_app, repo):
    c = make_app(
        REGISTRY_CFG
        + "signing_key = https://fedoraproject.org/fedora.gpg\nflatpak_remote = fedora-oci\n"
        + "lookaside = https://sigs.example.org/containers/\n"
    ).test_client()
    page = text(c.get("/help"))
    assert "flatpak remote-add --if-not-exists fedora-oci oci+https://registry.example.org" in page
    assert "lookaside: https://sigs.example.org/containers/" in page
    key = "/etc/pki/containers/registry.example.org.gpg"
    assert f"curl -fsSL -o {key} https://fedoraproject.org/fedora.gpg" in page
    policy = json.loads(html.unescape("{" + page.split("<code data-copy>{", 1)[1].split("</code>", 1)[0]))
    assert policy["transports"]["docker"]["registry.example.org"][0]["type"] == "signedBy"
    assert "registries.d/registry.example.org.yaml" in page
    # without a lookaside key: the master URL every repository shares
    page = text(make_app().test_client().get("/help"))
    assert "lookaside: https://dl.example.org/pub/containers/signatures" in page


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>&{{7*7}}'


def test_hostile_strings_are_escaped_everywhere(make_app, data_dir):
    """Labels, annotations, platforms, created, query, page and Host: inert text on every page."""
    n = Native("fedora/hostile")
    d = n.image("h")
    n.manifests[d].update(
        platform={"os": "linux", "architecture": HOSTILE, "variant": HOSTILE},
        labels={"org.flatpak.ref": f"app/{HOSTILE}/x86_64/stable", HOSTILE: HOSTILE},
        annotations={"org.flatpak.ref": HOSTILE, HOSTILE: HOSTILE},
        created=HOSTILE,
    )
    idx = n.index([(d, "amd64", None)])
    n.manifests[idx]["manifests"][0]["platform"] = {"os": HOSTILE, "architecture": "amd64"}
    body = json.loads(n.manifests[idx]["body"])
    assert body  # the index body itself stays valid; only the entries' facts are hostile
    n.tag("latest", idx).tag("single", d)
    write_v6(n, data_dir)
    flatpak_repo(data_dir, label=f"app/org.test.Hello/x86_64/{HOSTILE}")
    app = make_app(PROTECTED_CFG)
    assert "fedora/hostile" in app.extensions["crane_fedora"].store.index.repos
    c = app.test_client()
    pages = []
    for path in ("/", "/r/fedora/hostile", "/r/fedora/hello", "/help", "/r/no/such", "/r/" + HOSTILE):
        pages.append(c.get(path, query_string={"q": HOSTILE, "page": HOSTILE}, headers={"Host": HOSTILE}))
    pages.append(c.get("/", query_string={"q": HOSTILE}))
    for r in pages:
        page = text(r)
        assert r.status_code in (200, 404)
        assert (
            "<script>" not in page
            and "<img" not in page
            and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
        )
        assert HOSTILE not in page
        assert "flatpak install fedora" not in page  # neither label is a well-formed ref: no command
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text(pages[-1])  # the query, shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text(pages[1])  # the platform, shown as text


def test_summary_is_built_once_per_snapshot(make_app, data_dir, repo, monkeypatch):
    calls = []
    real = summary_mod.summarize
    monkeypatch.setattr(summary_mod, "summarize", lambda r: calls.append(r.name) or real(r))
    for i in range(3):
        n = Native(f"fedora/s{i}")
        n.tag("latest", n.image("x"))
        n.write(data_dir)
    app = make_app()
    c = app.test_client()
    for _ in range(3):
        c.get("/")
        c.get("/r/fedora/s1")
        c.get("/help")
    assert sorted(calls) == ["fedora/busybox", "fedora/s0", "fedora/s1", "fedora/s2"]
    # a reload that re-parsed one file re-summarises that repository only
    n = Native("fedora/s1")
    n.tag("latest", n.image("y")).tag("new", n.image("z"))
    n.write(data_dir)
    assert refresh(app)
    calls.clear()
    page = text(c.get("/r/fedora/s1"))
    assert calls == ["fedora/s1"] and 'id="tag-new"' in page


def test_background_reload_summarises_before_any_request(make_app, data_dir, repo, monkeypatch):
    app = make_app()
    store = app.extensions["crane_fedora"].store
    n = Native("fedora/late")
    n.tag("latest", n.image("1"))
    n.write(data_dir)
    calls = []
    real = summary_mod.summarize
    monkeypatch.setattr(summary_mod, "summarize", lambda r: calls.append(r.name) or real(r))
    assert store.reload("test")  # what the poller and the message listener call
    assert calls == ["fedora/late"]  # summarised in the reloading thread, the others reused
    calls.clear()
    assert 'href="/r/fedora/late"' in text(app.test_client().get("/")) and calls == []


def test_rendered_pages_are_kept_per_snapshot_and_bounded(make_app, repo, monkeypatch):
    app = make_app()
    c = app.test_client()
    renders = []
    import crane_fedora.views.ui as ui_views

    real = ui_views.render_template
    monkeypatch.setattr(ui_views, "render_template", lambda *a, **k: renders.append(a[0]) or real(*a, **k))
    for _ in range(3):
        assert c.get("/").status_code == 200
        assert c.get("/r/fedora/busybox").status_code == 200
    assert renders == ["ui/catalog.html", "ui/repository.html"]
    assert c.get("/", headers={"Host": "other.example:5000"}).status_code == 200  # another name
    assert renders[-1] == "ui/catalog.html" and len(renders) == 3
    cache = summary_mod.PageCache(limit=2)
    for i in range(3):
        cache.put((i,), (b"x", "e"))
    assert cache.get((0,)) is None and cache.get((2,)) == (b"x", "e")


def test_odd_facts_never_stop_startup_or_the_pages(make_app, data_dir, repo, monkeypatch, caplog):
    """A file the parser accepts with facts the summary does not expect (a list entry whose
    platform is a string) is still listed and its tags still pulled; so is any repository whose
    summary fails outright (logged, shown without facts)."""
    n = Native("fedora/odd")
    d = n.image("x")
    idx = n.index([(d, "amd64", None)])
    n.manifests[idx]["manifests"][0]["platform"] = "linux/amd64"  # not an object
    n.tag("latest", idx)
    n.write(data_dir)
    app = make_app()
    c = app.test_client()
    assert 'href="/r/fedora/odd"' in text(c.get("/"))
    page = c.get("/r/fedora/odd")
    assert page.status_code == 200 and "podman pull localhost/fedora/odd:latest" in text(page)

    def broken(repo):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(summary_mod, "summarize", broken)
    monkeypatch.setattr(summary_mod, "details", broken)
    app = make_app()  # startup summarises every repository: must survive
    c = app.test_client()
    assert 'href="/r/fedora/busybox"' in text(c.get("/")) and "cannot summarise" in caplog.text
    page = text(c.get("/r/fedora/busybox"))
    assert "podman pull localhost/fedora/busybox:latest</code>" in page and "cannot tabulate" in caplog.text


@pytest.mark.parametrize("path", ["/", "/r/fedora/busybox", "/help"])
def test_query_string_not_utf8_is_a_400(make_app, repo, path):
    """``GET /?%80``: Werkzeug cannot decode the arguments; a clear 400, never a 500."""
    r = make_app("").test_client().get(path, environ_overrides={"QUERY_STRING": "q=\x80"})
    assert r.status_code == 400, r.data
    assert r.headers["Content-Type"] == "application/json"
