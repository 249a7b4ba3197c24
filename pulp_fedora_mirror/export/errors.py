"""Exceptions of the export core.

One type the callers catch (the Pulp task marks the task failed with its message, the CLI prints
it as one line), so every failure the user can act on is raised as :class:`ExportError` with a
message that names the digest, tag or path involved.
"""

from __future__ import annotations


class ExportError(Exception):
    """An export, verification or prune that cannot proceed; ``str()`` is one line for users."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
