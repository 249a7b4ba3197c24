"""Adversarial review findings: each test failed before its fix (see the git log for the commit).

Why a separate file: these pin down attacks (header injection, memory exhaustion, one bad file
taking the service down, redirects leaving the configured URLs), not ordinary behaviour, so a
later change that reopens one of them fails a test whose name says which attack it is.
"""

from __future__ import annotations

import pytest

from pulp_fedora_mirror.layout import ANY_DIGEST_RE, DIGEST_RE, NAME_RE, TAG_RE

HEX = "a" * 64


def _headers_clean(resp) -> None:
    """No header value may carry a control character (response splitting)."""
    for key, value in resp.headers.items():
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value), (key, value)


# -- 1. "$" matches before a trailing newline: a "%0a" ended up in the Location header ----------
@pytest.mark.parametrize(
    "path",
    [
        f"/v2/legacy/hello/blobs/sha256:{HEX}%0a",
        "/v2/legacy/hello/manifests/latest%0a",
        "/v2/fedora/pulp2-busybox/manifests/latest%0a",
        "/v2/fedora/busybox/manifests/latest%0a",
        f"/v2/fedora/busybox/blobs/sha256:{HEX}%0a",
        "/v2/fedora/busybox%0a/tags/list",
    ],
)
def test_trailing_newline_is_not_a_valid_reference(client, path):
    resp = client.get(path)
    assert resp.status_code in (400, 404), resp.data
    assert "Location" not in resp.headers
    _headers_clean(resp)


@pytest.mark.parametrize("regex", [DIGEST_RE, ANY_DIGEST_RE, NAME_RE, TAG_RE])
def test_grammar_regexes_reject_trailing_newline(regex):
    valid = {DIGEST_RE: f"sha256:{HEX}", ANY_DIGEST_RE: f"sha256:{HEX}", NAME_RE: "a/b", TAG_RE: "latest"}
    assert regex.match(valid[regex])
    assert not regex.match(valid[regex] + "\n")
