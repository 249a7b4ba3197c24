"""``fedora-mirror export | verify | prune``: the export core from the command line.

Works on an OCI image layout (``skopeo copy docker://… oci:DIR:TAG``) with no Pulp installed, so
the same tree can be fed from a laptop, a build system or a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from typing import Any, TextIO

from ..export.errors import ExportError
from ..export.exporter import export_repository
from ..export.ocilayout import read_oci_layout
from ..export.prune import prune
from ..export.signatures import read_lookaside
from ..export.source import ExportTarget
from ..export.verify import verify
from . import CliError

EXPORT_EXAMPLES = """\
examples:
  skopeo copy --all docker://registry.fedoraproject.org/fedora:41 oci:/tmp/fedora:41
  fedora-mirror export /tmp/fedora --name fedora/fedora \\
      --root /srv/pub/containers --metadata-dir /srv/crane/metadata \\
      --master-url https://dl.fedoraproject.org/pub/containers/ \\
      --mirror-url https://download.fedoraproject.org/pub/containers/
  fedora-mirror export /tmp/fedora --name fedora/fedora --root /srv/pub/containers \\
      --metadata-dir /srv/crane/metadata --master-url https://dl.example.org/containers/ --json
  flatpak build-bundle --oci repo /tmp/hello org.example.Hello stable
  fedora-mirror export /tmp/hello --name fedora/hello --tag latest --root /srv/pub/containers \\
      --metadata-dir /srv/crane/metadata --master-url https://dl.example.org/containers/
  # with the simple-signing signatures "skopeo copy --sign-by" wrote to its lookaside staging dir
  fedora-mirror export /tmp/fedora --name fedora/fedora --root /srv/pub/containers \\
      --metadata-dir /srv/crane/metadata --master-url https://dl.example.org/containers/ \\
      --signatures /var/lib/containers/sigstore
"""

VERIFY_EXAMPLES = """\
examples:
  fedora-mirror verify /srv/pub/containers
  fedora-mirror verify /srv/pub/containers --metadata-dir /srv/crane/metadata --json

exit status: 0 when the tree is sound, 1 when files are missing, corrupt, stray or have bad modes.
"""

PRUNE_EXAMPLES = """\
examples:
  fedora-mirror prune /srv/pub/containers --metadata-dir /srv/crane/metadata --grace 7d --dry-run
  fedora-mirror prune /srv/pub/containers --metadata-dir /srv/crane/metadata --grace 7d

A file is deleted only after it has been unreferenced by every metadata file for the whole grace
period, counted from the first prune run that saw it unreferenced. Durations: 90s, 15m, 12h, 7d.
"""

_DURATION_RE = re.compile(r"^(\d+)([smhd]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90s``/``15m``/``12h``/``7d`` (bare numbers are seconds) → seconds."""
    m = _DURATION_RE.match(text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 90s, 15m, 12h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


class StderrProgress:
    """Progress on stderr: a redrawn bar on a terminal, plain start/finish lines otherwise (logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.state: dict[str, list[Any]] = {}

    def start(self, code: str, message: str, total: int | None) -> None:
        self.state[code] = [message, total, 0]
        if not self.tty:
            print(f"{message}: {total if total is not None else '?'} item(s)", file=self.stream, flush=True)

    def advance(self, code: str, n: int = 1) -> None:
        st = self.state.setdefault(code, [code, None, 0])
        st[2] += n
        if self.tty:
            message, total, done = st
            if total:
                width = 30
                filled = int(width * done / total)
                bar = "#" * filled + "-" * (width - filled)
                self.stream.write(f"\r{message:<24} [{bar}] {done}/{total}")
            else:
                self.stream.write(f"\r{message:<24} {done}")
            self.stream.flush()

    def finish(self, code: str) -> None:
        message, _total, done = self.state.get(code, [code, None, 0])
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        else:
            print(f"{message}: done ({done})", file=self.stream, flush=True)


def _emit(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print("\n".join(lines))


def cmd_export(args: argparse.Namespace) -> int:
    try:
        repo = read_oci_layout(args.layout, args.name, protected=args.protected, ref_tag=args.tag)
        if args.signatures:
            repo = dataclasses.replace(repo, signatures=read_lookaside(args.signatures))
        target = ExportTarget.from_exporter(args, hardlink=not args.copy)
        progress = None if args.quiet else StderrProgress()
        s = export_repository(repo, target, progress=progress, export_id=args.export_id)
    except ExportError as exc:
        raise CliError(str(exc)) from None
    lines = [
        f"exported {s.name}: {len(s.tags)} tag(s), {s.manifests} manifest(s), {s.blobs} blob(s)",
        f"  written: {s.files_written} file(s) ({s.blobs_linked} linked, {s.blobs_copied} copied, "
        f"{s.manifests_written} manifest(s)), {s.blobs_present} blob(s) already present",
        f"  signatures: {s.signatures} published, {s.signatures_written} written"
        + (
            f", {s.signatures_unmatched} left out (not an exported manifest)"
            if s.signatures_unmatched
            else ""
        ),
        f"  metadata {'updated' if s.metadata_changed else 'unchanged'}: {s.metadata_path}",
        f"  file list {'updated' if s.filelist_changed else 'unchanged'}",
    ]
    _emit(dataclasses.asdict(s), args.json, lines)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        res = verify(args.root, args.metadata_dir)
    except (ExportError, OSError) as exc:
        raise CliError(str(exc)) from None
    lines = [f"checked {res.checked} file(s)"]
    for key in ("missing", "wrong_size", "wrong_digest", "bad_modes", "stray", "unreferenced", "temp_files"):
        for rel in getattr(res, key):
            lines.append(f"{key.replace('_', ' ')}: {rel}")
    lines.append("OK" if res.ok else "PROBLEMS FOUND")
    _emit(res.to_dict(), args.json, lines)
    return 0 if res.ok else 1


def cmd_prune(args: argparse.Namespace) -> int:
    try:
        s = prune(args.root, args.metadata_dir, args.grace, dry_run=args.dry_run, module=args.module)
    except (ExportError, OSError) as exc:
        raise CliError(str(exc)) from None
    verb = "would delete" if s.dry_run else "deleted"
    lines = [f"{verb}: {rel}" for rel in s.deleted]
    lines.append(
        f"{s.referenced} referenced, {s.unreferenced} unreferenced ({s.newly_unreferenced} newly), "
        f"{len(s.deleted)} {verb}, {len(s.waiting)} in grace period"
    )
    _emit(s.to_dict(), args.json, lines)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``, ``verify`` and ``prune``."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "export",
        help="export an OCI image layout into the mirror tree and write its crane metadata",
        description="Export one OCI image layout as registry repository NAME: blobs and manifests "
        "into ROOT (content-addressed, hard-linked when possible), their signatures (--signatures) "
        "into ROOT/signatures, then METADATA_DIR/NAME.json, "
        "then ROOT/fullfiletimelist-MODULE. Unchanged content writes nothing.",
        epilog=EXPORT_EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("layout", metavar="OCI_LAYOUT", help="OCI image layout directory")
    p.add_argument("--name", required=True, help="registry repository name, e.g. fedora/fedora")
    # dest: the exporter's field names, see ExportTarget.from_exporter
    p.add_argument(
        "--root",
        dest="path",
        metavar="ROOT",
        required=True,
        help="top of the mirror tree (one MirrorManager module)",
    )
    p.add_argument(
        "--metadata-dir",
        dest="metadata_path",
        metavar="METADATA_DIR",
        required=True,
        help="crane_fedora data directory",
    )
    p.add_argument("--master-url", required=True, help="URL of ROOT on the master mirror")
    p.add_argument("--mirror-url", help="URL of ROOT behind the mirror redirector (default: none)")
    p.add_argument("--module", help="MirrorManager module name (default: basename of ROOT)")
    p.add_argument(
        "--signatures",
        metavar="DIR",
        help="containers/image lookaside store (NAME@sha256=HEX/signature-N, as 'skopeo copy "
        "--sign-by' writes it); signatures of exported manifests go to ROOT/signatures",
    )
    p.add_argument("--export-id", help="provenance id stored in the metadata")
    p.add_argument(
        "--tag",
        help="tag for index.json entries whose ref name is not a registry tag, such as the Flatpak ref "
        "(app/ID/ARCH/BRANCH) of a 'flatpak build-bundle --oci' layout (default: refuse them)",
    )
    p.add_argument("--protected", action="store_true", help="mark the repository protected")
    p.add_argument("--allow-protected", action="store_true", help="export even if protected")
    p.add_argument("--copy", action="store_true", help="always copy blobs, never hard-link")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "verify",
        help="hash and check every file of a mirror tree",
        description="Hash every blob and manifest under ROOT, check the signatures/ lookaside store's "
        "names (numbered without gaps) and modes and, with --metadata-dir, that every referenced file "
        "exists with the right size (signatures: the right bytes).",
        epilog=VERIFY_EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--metadata-dir", help="also check references and report unreferenced files")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "prune",
        help="delete files unreferenced for longer than a grace period",
        description="Delete tree files that no metadata file in METADATA_DIR references, once they "
        "have been unreferenced for --grace. Logs deletions to METADATA_DIR/.fedora-mirror/prune.log.",
        epilog=PRUNE_EXAMPLES,
        formatter_class=fmt,
    )
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--metadata-dir", required=True)
    p.add_argument("--grace", required=True, type=parse_duration, help="e.g. 7d, 12h, 15m, 90s")
    p.add_argument("--module", help="MirrorManager module name (default: basename of ROOT)")
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing, record nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_prune)
