"""crane_fedora behind gunicorn (TLS) with nginx serving the mirror tree: the serving half of
the chain, started from a tree directory and a metadata directory.

Why one helper: every crane test needs the same three URLs in agreement — the master nginx and
(optionally) a mirror nginx whose URLs go into the metadata's ``urls``, and crane itself. Ports
are chosen in the constructor, so the URLs are known *before* ``start()`` (export first, then
start, or the other way round).

Written against the documented config (``CRANE_CONFIG_PATH``; ``[general] data_dir``,
``data_dir_polling_interval``, ``debug``; ``[mirrors] settle_seconds``, ``allowed_url_prefixes``)
of crane_fedora as on the ``crane`` branch; its tests skip while ``crane_fedora`` is not
importable (i.e. on the ``harness`` branch alone).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from tests.harness.granian import Granian
from tests.harness.gunicorn import Gunicorn
from tests.harness.nginx import Nginx
from tests.harness.tls import TLSFiles

APP = "crane_fedora.wsgi:application"


class CraneStack:
    """nginx (master) over ``tree``, optional nginx (mirror) over ``mirror_tree``, crane_fedora.

    - ``master_url`` / ``mirror_url`` (``None`` without a mirror): put these in the metadata.
    - ``crane_url`` (``https://127.0.0.1:PORT``), ``crane_host`` (``127.0.0.1:PORT``, for clients).
    - ``config``: extra INI settings ``{section: {key: value}}`` merged over the defaults here
      (``debug: true``, polling interval 1 s, ``settle_seconds``).
    - ``pythonpath``: where ``crane_fedora`` lives if it is not installed in the venv.
    - ``server``: ``"gunicorn"`` (default) or ``"granian"``, both with TLS.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        tree: str | os.PathLike[str],
        metadata_dir: str | os.PathLike[str],
        *,
        tls: TLSFiles,
        mirror_tree: str | os.PathLike[str] | None = None,
        settle_seconds: int = 0,
        workers: int = 2,
        config: Mapping[str, Mapping[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        pythonpath: str | None = None,
        app: str = APP,
        mirror_extra_locations: str = "",
        server: str = "gunicorn",
        threads: int = 1,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.tree = Path(tree).resolve()
        self.metadata_dir = Path(metadata_dir).resolve()
        self.tls = tls
        self.settle_seconds = settle_seconds
        self.master = Nginx(
            self.state_dir / "nginx-master", self.tree, tls=tls, url_prefix="/pub/containers/"
        )
        self.mirror: Nginx | None = None
        if mirror_tree is not None:
            self.mirror = Nginx(
                self.state_dir / "nginx-mirror",
                mirror_tree,
                tls=tls,
                url_prefix="/mirror/containers/",
                extra_locations=mirror_extra_locations,
            )
        self.config_path = self.state_dir / "crane.conf"
        self.extra_config = {s: dict(kv) for s, kv in (config or {}).items()}
        server_class = {"gunicorn": Gunicorn, "granian": Granian}[server]
        # threads > 1: gunicorn's gthread workers (the documented production setting); a sync worker
        # is held by any idle connection a client keeps open (a browser's preconnects).
        gthread = threads > 1 and server == "gunicorn"
        extra = {"worker_class": "gthread", "threads": threads} if gthread else {}
        self.crane = server_class(
            self.state_dir / "crane",
            app,
            tls=tls,
            workers=workers,
            **extra,
            env={"CRANE_CONFIG_PATH": str(self.config_path), **(env or {})},
            pythonpath=pythonpath,
            ready_path="/v2/",
        )

    @property
    def master_url(self) -> str:
        """``https://127.0.0.1:P/pub/containers/`` (metadata ``urls.master``)."""
        return self.master.url

    @property
    def mirror_url(self) -> str | None:
        """Mirror nginx URL (metadata ``urls.mirror``), or None."""
        return self.mirror.url if self.mirror else None

    @property
    def crane_url(self) -> str:
        """Base URL of crane_fedora (no trailing slash)."""
        return self.crane.url

    @property
    def crane_host(self) -> str:
        """``127.0.0.1:PORT`` for client references (``<crane_host>/test/single-oci:latest``)."""
        return self.crane.host

    def write_config(self) -> Path:
        """Write the crane INI config (``debug`` is always set: Crane crashed without it)."""
        prefixes = " ".join(u for u in (self.master_url, self.mirror_url) if u)
        cfg: dict[str, dict[str, str]] = {
            "general": {
                "debug": "true",
                "data_dir": str(self.metadata_dir) + "/",
                "data_dir_polling_interval": "1",
            },
            "mirrors": {"settle_seconds": str(self.settle_seconds), "allowed_url_prefixes": prefixes},
        }
        for section, kv in self.extra_config.items():
            cfg.setdefault(section, {}).update(kv)
        text = "".join(
            f"[{section}]\n" + "".join(f"{k}: {v}\n" for k, v in kv.items()) + "\n"
            for section, kv in cfg.items()
        )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(text)
        return self.config_path

    def start(self) -> Self:
        """Start nginx(es), then crane; on failure stop what was started."""
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.tree.mkdir(parents=True, exist_ok=True)
        self.write_config()
        try:
            self.master.start()
            if self.mirror:
                self.mirror.start()
            self.crane.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop crane and the nginx instances (idempotent)."""
        self.crane.stop()
        if self.mirror:
            self.mirror.stop()
        self.master.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
