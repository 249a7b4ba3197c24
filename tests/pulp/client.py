"""A small REST client for the tests: plain ``requests``, hrefs as Pulp returns them.

No generated bindings: the plugin's own bindings would need the OpenAPI generator (Java), and
raw requests show exactly the REST shapes users see.
"""

from __future__ import annotations

import time
from typing import Any

import requests

FINAL_STATES = ("completed", "failed", "canceled", "skipped")


class TaskFailed(AssertionError):
    """A task ended in a state other than completed; carries the task for inspection."""

    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__(f"task {task['pulp_href']} {task['state']}: {task.get('error')}")
        self.task = task


class PulpApi:
    """Requests against one Pulp as one user."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = self.base_url + "/pulp/api/v3/"
        self.s = requests.Session()
        self.s.auth = (user, password)
        self.s.headers["Accept"] = "application/json"

    def url(self, href: str) -> str:
        """Absolute URL for an href (``/pulp/api/v3/...``) or a path relative to the API root."""
        if href.startswith("http"):
            return href
        return self.base_url + href if href.startswith("/") else self.api + href

    def request(self, method: str, href: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        return self.s.request(method, self.url(href), **kw)

    def get(self, href: str, **kw: Any) -> requests.Response:
        return self.request("GET", href, **kw)

    def post(self, href: str, body: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
        return self.request("POST", href, json=body or {}, **kw)

    def patch(self, href: str, body: dict[str, Any], **kw: Any) -> requests.Response:
        return self.request("PATCH", href, json=body, **kw)

    def delete(self, href: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", href, **kw)

    def ok(self, resp: requests.Response, status: int | tuple[int, ...] = (200, 201, 202)) -> Any:
        """Assert the status and return the JSON body (with the body in the failure message)."""
        want = (status,) if isinstance(status, int) else status
        assert resp.status_code in want, f"{resp.request.method} {resp.url}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def wait_task(self, href: str, timeout: float = 120, check: bool = True) -> dict[str, Any]:
        """Poll a task until it ends; raise :class:`TaskFailed` unless it completed (if ``check``)."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.ok(self.get(href), 200)
            if task["state"] in FINAL_STATES:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"task {href} still {task['state']} after {timeout} s")
            time.sleep(0.2)
        if check and task["state"] != "completed":
            raise TaskFailed(task)
        return task

    def run(self, resp: requests.Response, timeout: float = 120, check: bool = True) -> dict[str, Any]:
        """Expect a 202 with a task, wait for it."""
        body = self.ok(resp, 202)
        return self.wait_task(body["task"], timeout=timeout, check=check)
