"""Named points at every publishing ``rename``: where the crash and write-order tests stop the exporter.

The tests must observe the real tree at every moment something becomes visible, and kill the
exporter there, without mocks. So every publishing ``rename`` calls :func:`reached`. Nothing in
production turns the points on (no environment variable, no file): only code running in the same
process can, through :func:`install`, which the crash tests' own launcher does
(``tests/unit/testpoint_runner.py``: it records the label and stops the process with ``SIGSTOP``;
the test inspects the tree, then sends ``SIGCONT`` or ``SIGKILL``). Without a hook, :func:`reached`
is one global look-up.
"""

from __future__ import annotations

from collections.abc import Callable

_hook: Callable[[str], None] | None = None


def install(hook: Callable[[str], None] | None) -> None:
    """Call ``hook(label)`` at every test point of this process (None: remove it). Tests only."""
    global _hook
    _hook = hook


def reached(label: str) -> None:
    """Hand ``label`` to the installed hook, if any (a no-op in production)."""
    hook = _hook
    if hook is not None:
        hook(label)
