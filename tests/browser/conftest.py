"""Browser tests: crane_fedora under gunicorn (TLS) over a mirror tree, driven by headless Chromium.

Debian's ``chromium`` and ``chromium-driver`` through Selenium; no network, a fresh profile per
session. Screenshots go to ``<state_dir>/browser-screenshots`` (the test output directory), or to
``$UI_SCREENSHOT_DIR`` when set (``docs/ui.md`` is made with ``UI_SCREENSHOT_DIR=docs/ui``).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.build_images import FixtureImage
from tests.harness.crane import CraneStack
from tests.harness.fixtures import *  # noqa: F403
from tests.harness.tls import TLSFiles
from tests.harness.tree import write_tree

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLATPAK_NAME = "test/hello-flatpak"
FLATPAK_REF = "app/org.test.Hello/x86_64/stable"
#: Chromium flags for a machine without network: nothing may phone home or update itself.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--force-device-scale-factor=1",
    "--lang=en-US",
)


def _flatpak_copy(image: FixtureImage, metadata_dir: Path) -> None:
    """A version-6 copy of a one-image fixture, named like a Flatpak, with a label and a signature.

    Same manifests and blobs as the fixture (so it pulls), plus the facts the exporter writes in
    version 6: the page must show the Flatpak ref, the platform and the signature.
    """
    src = metadata_dir / "test" / f"{image.name}.json"
    doc = copy.deepcopy(json.loads(src.read_text()))
    doc["version"] = 6
    doc["repo-registry-id"] = FLATPAK_NAME
    doc["repository"] = "fixture-hello-flatpak"
    entry = doc["manifests"][image.digest]
    entry["platform"] = {"os": "linux", "architecture": "amd64"}
    entry["labels"] = {"org.flatpak.ref": FLATPAK_REF}
    entry["signatures"] = [{"index": 1, "content": base64.b64encode(b"signature").decode()}]
    dest = metadata_dir / "test" / "hello-flatpak.json"
    dest.write_text(json.dumps(doc, sort_keys=True))


@pytest.fixture(scope="session")
def ui_stack(
    state_dir: Path, tls_ca: TLSFiles, fixture_images: dict[str, FixtureImage]
) -> Iterator[CraneStack]:
    """nginx (master tree) + crane_fedora with the four fixture images and one Flatpak-labelled copy.

    No ``[ui] registry``: the pages name the registry after the Host the browser used, which is
    exactly what podman must pull from here.
    """
    base = state_dir / "ui-stack"
    # gthread, as docs/crane.md deploys it: Chromium keeps idle (pre)connections open, which would
    # hold sync workers and time out podman's TLS handshake.
    stack = CraneStack(base, base / "tree", base / "metadata", tls=tls_ca, settle_seconds=0, threads=8)
    published = int(time.time()) - 86400  # yesterday, settled (settle_seconds = 0)
    write_tree(
        fixture_images, base / "tree", base / "metadata", master_url=stack.master_url, published=published
    )
    _flatpak_copy(fixture_images["single-oci"], base / "metadata")
    with stack:
        yield stack


@pytest.fixture(scope="session")
def screenshot_dir(state_dir: Path) -> Path:
    d = Path(os.environ.get("UI_SCREENSHOT_DIR") or state_dir / "browser-screenshots").resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium (Selenium 4, the system chromedriver), fresh profile, console log kept."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (Debian chromium, chromium-driver; `make deps`)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.accept_insecure_certs = True  # the harness CA is not in Chromium's store
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
