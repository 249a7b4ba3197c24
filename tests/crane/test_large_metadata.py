"""Issue 13 item 7: a size cap on metadata files, and parsing that lets other threads run."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import pytest

from crane_fedora.metadata import jsonsteps

from .builder import Native
from .conftest import refresh


def _names(app) -> set[str]:
    return set(app.extensions["crane_fedora"].store.index.repos)


def _big(name: str, images: int) -> Native:
    n = Native(name)
    for i in range(images):
        n.tag(f"t{i}", n.image(f"{name}-{i}"))
    return n


def test_file_over_the_cap_is_rejected_unread_and_keeps_its_last_good_version(make_app, data_dir, caplog):
    small = _big("a/small", 1)
    small.write(data_dir)
    path = _big("a/grows", 2).write(data_dir)
    cap = path.stat().st_size + 100
    app = make_app(f"max_metadata_size = {cap}\n")
    assert _names(app) == {"a/small", "a/grows"}
    _big("a/grows", 40).write(data_dir)  # same repository, now over the cap
    assert path.stat().st_size > cap
    with caplog.at_level(logging.ERROR, logger="crane_fedora"):
        refresh(app)
    assert _names(app) == {"a/small", "a/grows"}  # the last good version is still served
    client = app.test_client()
    assert client.get("/v2/a/grows/manifests/t1").status_code == 200
    assert client.get("/v2/a/grows/manifests/t30").status_code == 404
    assert client.get("/healthz").json["errors"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("max_metadata_size" in m and "a/grows.json" in m and "not read" in m for m in messages), (
        messages
    )
    # a new file over the cap is simply not served
    _big("a/new", 40).write(data_dir)
    refresh(app)
    assert "a/new" not in _names(app)


def test_cap_is_a_config_key(make_app, data_dir):
    from crane_fedora.config import ConfigError, parse_config

    assert parse_config("").max_metadata_size == 64 * 1024 * 1024
    assert parse_config("[general]\nmax_metadata_size = 1000\n").max_metadata_size == 1000
    with pytest.raises(ConfigError, match=r"\[general\] max_metadata_size"):
        parse_config("[general]\nmax_metadata_size = 0\n")


CASES = [
    "{}",
    "[]",
    ' {"a" : {"b":[1,2,{"c":3}]}, "d":[ ] } ',
    '{"a":1,"a":2}',
    '{"a":NaN, "b": -Infinity}',
    '"x"',
    "null",
    '{"\\ud800": "\\u00e9"}',
    "[[[[[1]]]]]",
    # errors
    '{"a":1,}',
    '{"a" 1}',
    "[1,2",
    '{"a":1}x',
    "",
    "  ",
    "[1,,2]",
    '{"x":{"y":}}',
    "\ufeff{}",
    '{"a":[1,2,]}',
    "{'a': 1}",
]


@pytest.mark.parametrize("text", CASES)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_jsonsteps_is_json_loads(text: str, as_bytes: bool) -> None:
    data = text.encode("utf-8") if as_bytes else text
    try:
        expected = ("ok", repr(json.loads(data)))
    except ValueError as exc:
        expected = ("error", type(exc).__name__)
    try:
        got = ("ok", repr(jsonsteps.loads(data)))
    except ValueError as exc:
        got = ("error", type(exc).__name__)
    assert got == expected


def test_jsonsteps_same_document_for_a_real_metadata_file(data_dir) -> None:
    for encoding in ("utf-8", "utf-16", "utf-32"):
        text = json.dumps(_big("x/y", 50).doc(), ensure_ascii=False, indent=1)
        data = text.encode(encoding)
        assert jsonsteps.loads(data) == json.loads(data)


def test_other_threads_run_while_a_large_file_is_parsed() -> None:
    """The parser crane uses lets a waiting thread run many times during one parse.

    ``json.loads`` holds the GIL for the whole document, so a thread that wants it gets it at
    most once before and once after the call, however long the call takes (a 284 MB file: 7 s).
    The spinner below gives the GIL up after every step (``sleep(0)``), so its count is the
    number of times it got the GIL back while the parse ran. Counts, not times: how long a
    request waits is measured by benchmarks/reload_bench.py.
    """
    from crane_fedora.metadata import parse as parse_mod

    data = json.dumps(_big("x/big", 3000).doc()).encode()

    def switches_during(parse) -> int:
        stop = threading.Event()
        started = threading.Event()
        count = [0]

        def spin() -> None:
            started.set()
            while not stop.is_set():
                count[0] += 1
                time.sleep(0)

        t = threading.Thread(target=spin)
        old = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        t.start()
        started.wait()
        try:
            before = count[0]
            result = parse(data)
            during = count[0] - before
        finally:
            stop.set()
            t.join()
            sys.setswitchinterval(old)
        assert result is not None
        return during

    from crane_fedora.config import parse_config

    config = parse_config("")
    assert len(data) > parse_mod.STEPPED_ABOVE
    assert parse_mod._loads(data) == json.loads(data)
    whole = lambda d: parse_mod.parse_bytes(d, "x/big.json", config)  # noqa: E731
    assert min(switches_during(whole) for _ in range(3)) >= 5
    # the JSON stage alone (json.loads before: one C call, at most one switch)
    assert min(switches_during(parse_mod._loads) for _ in range(3)) >= 5


def test_dismantle_empties_only_what_nobody_else_holds() -> None:
    shared = {"kept": "yes"}
    doc = {"manifests": {"a": {"labels": shared}, "b": [1, 2]}, "tags": {"x": "a"}, "n": 1}
    jsonsteps.dismantle(doc)
    assert doc == {} and shared == {"kept": "yes"}


def test_replaced_repository_is_taken_apart_later_not_while_served(make_app, data_dir, monkeypatch) -> None:
    from crane_fedora.metadata import store as store_mod

    _big("a/r", 3).write(data_dir)
    app = make_app()
    st = app.extensions["crane_fedora"].store
    old = st.index.repos["a/r"]
    _big("a/r", 4).write(data_dir)
    refresh(app)
    new = st.index.repos["a/r"]
    assert new is not old and len(old.tags) == 3  # retired, still whole
    monkeypatch.setattr(store_mod, "RETIRE_AFTER", 0.0)
    monkeypatch.setattr(store_mod, "BURY_ABOVE", 0)  # (only large repositories are taken apart)
    (data_dir / "other.json").write_text("{}")  # any change: the next refresh buries
    refresh(app)
    assert len(old.tags) == 0 and len(old.manifests) == 0 and len(old.blobs) == 0
    assert len(new.tags) == 4
    assert app.test_client().get("/v2/a/r/manifests/t3").status_code == 200
