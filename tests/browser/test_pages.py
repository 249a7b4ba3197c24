"""The home page in a real browser: headless Chromium loads what gunicorn serves, a person's path.

Catalog lists every image, search narrows it, a repository page shows tags and a pull command,
and that command, taken from the page, pulls with real ``podman`` through crane + nginx. Each
page is screenshotted (checked not blank) and checked for accessibility basics through the
browser itself: accessible names from Chromium's accessibility tree (WebDriver computed label
and role), heading order, labels, WCAG AA contrast of every text node from computed styles, and
no console error (a CSP violation would be one).
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from fixtures.build_images import IMAGE_NAMES, FixtureImage
from tests.harness import clients
from tests.harness.crane import CraneStack
from tests.harness.tls import TLSFiles

from .conftest import FLATPAK_NAME, FLATPAK_REF

pytestmark = [pytest.mark.services, pytest.mark.browser]

EXPECTED = {f"test/{name}" for name in IMAGE_NAMES} | {FLATPAK_NAME}

#: WCAG 2 contrast of every visible text node against its effective background, from computed
#: styles (alpha backgrounds composited over their parents'); returns the failures.
CONTRAST_JS = r"""
function rgba(s) { const m = s.match(/[\d.]+/g) || ["0","0","0","0"];
  return [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1]; }
function lum(c) { const f = v => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); }
function over(top, bottom) { const a = top[3];
  return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]); }
function background(el) { const layers = [];
  for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
  let bg = [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  return bg; }
const failures = []; let checked = 0;
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) { const node = walker.currentNode; if (!node.textContent.trim()) continue;
  const el = node.parentElement; const st = getComputedStyle(el); const r = el.getBoundingClientRect();
  if (st.visibility === "hidden" || st.display === "none" || r.width === 0 || r.right < 0) continue;
  const fg = over(rgba(st.color), background(el)); const bg = background(el);
  const l1 = lum(fg), l2 = lum(bg); const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
  const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5; checked++;
  if (ratio < need) failures.push([node.textContent.trim().slice(0, 40), ratio.toFixed(2), need]); }
return [checked, failures];
"""

STRUCTURE_JS = r"""
const out = {lang: document.documentElement.lang, h1: document.querySelectorAll("h1").length,
  mains: document.querySelectorAll("main").length, skips: [], unlabelled: [], images: []};
let last = 0;
document.querySelectorAll("h1, h2, h3, h4, h5, h6").forEach(h => { const level = +h.tagName[1];
  if (level > last + 1) out.skips.push(h.tagName + " " + h.textContent.trim()); last = level; });
document.querySelectorAll("input, select, textarea").forEach(el => {
  if (el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
    out.unlabelled.push(el.outerHTML.slice(0, 80)); });
document.querySelectorAll("img").forEach(img => { if (!img.hasAttribute("alt")) out.images.push(img.src); });
return out;
"""


def open_page(browser, url: str) -> None:
    browser.get(url)
    browser.find_element("css selector", "main")  # the document is there


@contextlib.contextmanager
def navigation(browser, timeout: float = 15) -> Iterator[None]:
    """The block starts a page load (a click on a link, a form submitted): wait until the new
    document has replaced the old one and has its ``main``. Without it a lookup right after the
    click could run on the old page (seen with Chromium 156.0.8078.114: the search test read the
    old page's count)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element("tag name", "html")
    yield
    wait = WebDriverWait(browser, timeout)
    wait.until(expected_conditions.staleness_of(old))
    wait.until(lambda d: d.find_elements("css selector", "main"))


def shoot(browser, directory: Path, name: str) -> Path:
    """Full-width screenshot of the current page; assert it decodes and is not blank."""
    height, chrome = browser.execute_script(
        "return [Math.min(document.body.scrollHeight, 2400), window.outerHeight - window.innerHeight]"
    )
    browser.set_window_size(1280, max(400, int(height)) + int(chrome))
    path = directory / f"{name}.png"
    assert browser.save_screenshot(str(path)), path
    with Image.open(path) as img:
        img.load()
        assert img.width >= 1000 and img.height >= 300, img.size
        gray = img.convert("L")
        stat = ImageStat.Stat(gray)
        assert stat.stddev[0] > 10, f"{path}: nearly uniform (stddev {stat.stddev[0]:.1f})"
        colors = img.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colors is None or len(colors) > 16, f"{path}: only {len(colors)} colours"
    browser.set_window_size(1280, 900)
    if os.environ.get("UI_SCREENSHOT_DIR"):  # for docs/ui.md: a 64-colour palette keeps them small
        with Image.open(path) as img:
            small = img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path


def check_accessibility(browser) -> None:
    s = browser.execute_script(STRUCTURE_JS)
    assert s["lang"] == "en" and s["h1"] == 1 and s["mains"] == 1, s
    assert s["skips"] == [] and s["unlabelled"] == [] and s["images"] == [], s
    checked, failures = browser.execute_script(CONTRAST_JS)
    assert checked > 5 and failures == [], failures
    # accessible names as the accessibility tree computes them (WebDriver "computed label")
    for el in browser.find_elements("css selector", "a, button, input"):
        if el.is_displayed():
            assert el.accessible_name.strip(), el.get_attribute("outerHTML")[:120]
    assert browser.find_element("css selector", "main").aria_role == "main"
    assert browser.find_element("css selector", "header nav").aria_role == "navigation"


def console_errors(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


def test_catalog_lists_every_repository(browser, ui_stack: CraneStack, screenshot_dir: Path) -> None:
    open_page(browser, ui_stack.crane_url + "/")
    links = {a.text: a.get_attribute("href") for a in browser.find_elements("css selector", "table.repos a")}
    assert set(links) == EXPECTED
    assert all(href == f"{ui_stack.crane_url}/r/{name}" for name, href in links.items())
    assert browser.find_element("css selector", "h2").text == "test"  # grouped by first component
    assert browser.find_element("id", "count").text.startswith(f"{len(EXPECTED)} repositories")
    row = browser.find_element("xpath", f"//a[text()='{FLATPAK_NAME}']/ancestor::tr")
    assert "Flatpak" in row.text and "Signed" in row.text
    check_accessibility(browser)
    assert console_errors(browser) == []
    shoot(browser, screenshot_dir, "catalog")


def test_search_narrows_the_list(browser, ui_stack: CraneStack, screenshot_dir: Path) -> None:
    open_page(browser, ui_stack.crane_url + "/")
    box = browser.find_element("id", "q")
    assert box.accessible_name == "Search repository names" and box.aria_role == "searchbox"
    box.send_keys("multi")
    with navigation(browser):
        browser.find_element("css selector", "form.search button[type=submit]").click()
    browser.find_element("xpath", "//p[@id='count'][contains(., 'matching')]")
    names = {a.text for a in browser.find_elements("css selector", "table.repos a")}
    assert names == {"test/multi-docker", "test/multi-oci"}
    assert browser.current_url.endswith("/?q=multi")
    assert browser.find_element("id", "q").get_attribute("value") == "multi"
    shoot(browser, screenshot_dir, "search")
    browser.find_element("id", "q").clear()
    with navigation(browser):
        browser.find_element("id", "q").send_keys("no-such-thing\n")
    browser.find_element("xpath", "//p[@id='count'][contains(., 'No repository name contains')]")
    assert browser.find_elements("css selector", "table.repos") == []


def test_repository_page(
    browser, ui_stack: CraneStack, fixture_images: dict[str, FixtureImage], screenshot_dir: Path
) -> None:
    open_page(browser, ui_stack.crane_url + "/")
    with navigation(browser):
        browser.find_element("link text", "test/multi-oci").click()
    assert browser.find_element("css selector", "h1").text == "test/multi-oci"
    image = fixture_images["multi-oci"]
    row = browser.find_element("id", "tag-latest")
    assert row.find_element("css selector", "th").text == "latest"
    # the digest is shortened on screen but the whole digest is in the element (select + copy)
    digest = row.find_element("css selector", "code.digest")
    assert digest.get_attribute("textContent") == image.digest
    assert digest.size["width"] < 200
    platforms = row.find_element("css selector", "ul").text
    assert "linux/amd64" in platforms and "linux/arm64/v8" in platforms and "unknown" not in platforms
    command = f"podman pull {ui_stack.crane_host}/test/multi-oci:latest"
    assert browser.find_element("id", "pull-cmd").text == command
    assert row.find_element("css selector", "code.pull").text == command
    # JavaScript added copy buttons with accessible names
    buttons = browser.find_elements("css selector", "button.copy")
    assert buttons and all(b.accessible_name.startswith("Copy ") for b in buttons)
    check_accessibility(browser)
    assert console_errors(browser) == []
    shoot(browser, screenshot_dir, "repository")


def test_flatpak_repository_page(browser, ui_stack: CraneStack, screenshot_dir: Path) -> None:
    open_page(browser, f"{ui_stack.crane_url}/r/{FLATPAK_NAME}")
    cmds = [c.text for c in browser.find_elements("css selector", "code[data-copy]")]
    assert f"flatpak install fedora {FLATPAK_REF}" in cmds
    assert f"flatpak remote-add --if-not-exists fedora oci+https://{ui_stack.crane_host}" in cmds
    assert (
        browser.find_element("id", "tag-latest").find_element("css selector", ".badge.signed").text
        == "Signed"
    )
    check_accessibility(browser)
    shoot(browser, screenshot_dir, "flatpak")


def test_help_page(browser, ui_stack: CraneStack, screenshot_dir: Path) -> None:
    open_page(browser, ui_stack.crane_url + "/")
    with navigation(browser):
        browser.find_element("link text", "Set up podman and flatpak").click()
    text = browser.find_element("css selector", "main").text
    assert f"lookaside: {ui_stack.master_url}signatures" in text
    assert '"signedBy"' in text and f"oci+https://{ui_stack.crane_host}" in text
    check_accessibility(browser)
    assert console_errors(browser) == []
    shoot(browser, screenshot_dir, "help")


@pytest.mark.clients
@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_pull_command_from_the_page_works(
    browser,
    ui_stack: CraneStack,
    tls_ca: TLSFiles,
    fixture_images: dict[str, FixtureImage],
    name: str,
    tmp_path: Path,
) -> None:
    """Copy the command shown on the page and run it with the real podman (own storage and CA)."""
    open_page(browser, f"{ui_stack.crane_url}/r/test/{name}")
    argv = shlex.split(browser.find_element("id", "pull-cmd").text)
    assert argv[:2] == ["podman", "pull"] and len(argv) == 3, argv
    res = clients.podman_pull(argv[2], root=tmp_path / "pm", cert_dir=tls_ca.cert_dir(), arch="amd64")
    assert res.digest == fixture_images[name].digest


def test_accessibility_checks_catch_problems(browser, ui_stack: CraneStack) -> None:
    """The checks above can fail: low contrast, an unlabelled field and a skipped level are caught."""
    open_page(browser, ui_stack.crane_url + "/help")
    browser.execute_script(
        "const main = document.querySelector('main');"
        "const p = document.createElement('p'); p.textContent = 'faint text';"
        "p.style.color = '#bbbbbb'; main.appendChild(p);"  # a script may set styles; markup may not
        "main.appendChild(document.createElement('input'));"
        "const h = document.createElement('h4'); h.textContent = 'deep'; main.appendChild(h);"
    )
    _checked, failures = browser.execute_script(CONTRAST_JS)
    assert [f[0] for f in failures] == ["faint text"]
    s = browser.execute_script(STRUCTURE_JS)
    assert len(s["unlabelled"]) == 1 and s["skips"] == ["H4 deep"]


def test_pages_work_without_javascript(browser, ui_stack: CraneStack) -> None:
    """Script execution off (DevTools emulation): search and the pull command still work."""
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        open_page(browser, ui_stack.crane_url + "/")
        with navigation(browser):
            browser.find_element("id", "q").send_keys("single\n")
        browser.find_element("xpath", "//p[@id='count'][contains(., 'matching')]")
        names = {a.text for a in browser.find_elements("css selector", "table.repos a")}
        assert names == {"test/single-docker", "test/single-oci"}
        with navigation(browser):
            browser.find_element("link text", "test/single-oci").click()
        command = f"podman pull {ui_stack.crane_host}/test/single-oci:latest"
        assert browser.find_element("id", "pull-cmd").text == command
        assert browser.find_elements("css selector", "button.copy") == []  # only the script adds them
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
