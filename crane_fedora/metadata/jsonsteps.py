"""``json.loads`` in small steps, so that parsing a large metadata file never stalls requests.

Why: ``json.loads`` is one C call that holds the GIL from the first byte to the last. A valid
284 MB file stalled every request thread of a worker for up to 7 s while the poll thread parsed
it (issue 13 item 7). Here the top levels of the document (the file's object, then each of its
members such as ``manifests`` and ``blobs``) are walked member by member in Python, and only the
small values below them (one manifest entry, one blob) go to the standard library's C decoder
(``JSONDecoder.raw_decode``). Between two such calls the interpreter can hand the GIL to a
request thread (every ``sys.getswitchinterval()``, 5 ms), so a reload delays a request by
milliseconds instead of seconds. ``benchmarks/reload_bench.py`` measures it against ``json.loads``.

The result is exactly what ``json.loads`` returns for the same input, errors included (a
``json.JSONDecodeError``, a ``ValueError``); only the work is sliced.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
import time
from json.decoder import scanstring

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")
#: Bytes decoded to text per step (a C call each; a whole 64 MB file at once took ~50 ms).
_TEXT_STEP = 1 << 18
#: Levels walked in Python: the document's object, then each member's object or array.
DEPTH = 2


#: Longest stretch (seconds) a parse keeps the GIL before offering it to waiting threads.
SLICE = 0.0005
_last_pause = [0.0]


def pause(_clock=time.perf_counter, _last=_last_pause) -> None:
    """Give waiting threads the GIL if this parse has run for :data:`SLICE` since the last pause.

    Why explicit: slicing alone leaves the GIL to the interpreter, which takes it from a busy
    thread only every ``sys.getswitchinterval()`` (5 ms) - and a request needs it several times
    (read, answer, write), so each request still waited tens of milliseconds behind a parse.
    ``time.sleep(0)`` releases the GIL at once; a request thread that wants it gets it, and the
    parse continues when that thread blocks on I/O again. Cheap when nobody waits (~1 µs, at most
    every 0.5 ms). Call it once per unit of work in every loop that can run long.
    """
    now = _clock()
    if now - _last[0] >= SLICE:
        time.sleep(0)
        _last[0] = _clock()


def _ws(s: str, idx: int) -> int:
    return _WS.match(s, idx).end()  # type: ignore[union-attr]


def _text(data: bytes) -> str:
    """``data`` as text, as ``json.loads`` decodes bytes (encoding detected, BOM dropped)."""
    decoder = codecs.getincrementaldecoder(json.detect_encoding(data))("surrogatepass")
    view = memoryview(data)
    parts = []
    for i in range(0, len(data), _TEXT_STEP):
        pause()
        parts.append(decoder.decode(view[i : i + _TEXT_STEP]))
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def _value(s: str, idx: int, depth: int) -> tuple[object, int]:
    if depth > 0 and idx < len(s):
        c = s[idx]
        if c == "{":
            return _object(s, idx + 1, depth - 1)
        if c == "[":
            return _array(s, idx + 1, depth - 1)
    return _DECODER.raw_decode(s, idx)


def _object(s: str, idx: int, depth: int) -> tuple[dict, int]:
    out: dict = {}
    idx = _ws(s, idx)
    if s.startswith("}", idx):
        return out, idx + 1
    while True:
        pause()
        if not s.startswith('"', idx):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, idx)
        key, idx = scanstring(s, idx + 1)
        idx = _ws(s, idx)
        if not s.startswith(":", idx):
            raise json.JSONDecodeError("Expecting ':' delimiter", s, idx)
        value, idx = _value(s, _ws(s, idx + 1), depth)
        out[key] = value
        idx = _ws(s, idx)
        if s.startswith(",", idx):
            idx = _ws(s, idx + 1)
        elif s.startswith("}", idx):
            return out, idx + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", s, idx)


def _array(s: str, idx: int, depth: int) -> tuple[list, int]:
    out: list = []
    idx = _ws(s, idx)
    if s.startswith("]", idx):
        return out, idx + 1
    while True:
        pause()
        value, idx = _value(s, idx, depth)
        out.append(value)
        idx = _ws(s, idx)
        if s.startswith(",", idx):
            idx = _ws(s, idx + 1)
        elif s.startswith("]", idx):
            return out, idx + 1
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", s, idx)


def loads(data: bytes | str) -> object:
    """``json.loads(data)``, in steps that let other threads run (see the module docstring)."""
    s = _text(data) if isinstance(data, (bytes, bytearray)) else data
    if s.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", s, 0)
    value, idx = _value(s, _ws(s, 0), DEPTH)
    idx = _ws(s, idx)
    if idx != len(s):
        raise json.JSONDecodeError("Extra data", s, idx)
    return value


def dismantle(container: dict | list, depth: int = 2) -> None:
    """Empty a large container item by item (pausing), down to ``depth`` levels.

    Why: freeing a parsed 30 MB document, or a replaced repository, is one cascade of C
    deallocations (50-80 ms for a million objects) that holds the GIL like ``json.loads`` did.
    Popping item by item spreads that cost over many short steps. A nested container is only
    emptied if nothing else refers to it (``sys.getrefcount``), so objects still in use (a
    manifest's labels, say) are never touched; they are simply released.
    """
    if depth <= 0:
        return
    if type(container) is dict:
        while container:
            pause()
            _key, value = container.popitem()
            if type(value) in (dict, list) and sys.getrefcount(value) == 2:
                dismantle(value, depth - 1)
    elif type(container) is list:
        while container:
            pause()
            value = container.pop()
            if type(value) in (dict, list) and sys.getrefcount(value) == 2:
                dismantle(value, depth - 1)
