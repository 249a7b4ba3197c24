"""Run every benchmark in one go and record the tables in docs/benchmarks.md.

Each benchmark is a module runnable as ``python -m benchmarks.<name>`` that prints markdown on
stdout (progress on stderr). This runner only sequences them, describes the machine and writes
the record, so a benchmark can also be run alone while working on it.

Usage: ``python -m benchmarks [--only NAME ...] [--no-record]``
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = {
    "export": ("benchmarks.export_bench", "Mirror export (issue 2)"),
    "pulp": ("benchmarks.pulp_bench", "Pulp: MirrorExporter vs FilesystemExporter (issue 2)"),
    "crane": ("benchmarks.crane_bench", "crane_fedora vs nginx (issue 5)"),
    "ui": ("benchmarks.ui_bench", "Home page: server time and weight at 10,000 repositories (issue 12)"),
    "flatpak": ("benchmarks.flatpak_bench", "Flatpak index: crane_fedora vs nginx (issue 8)"),
    "reload": ("benchmarks.reload_bench", "Requests during a reload of a 30 MB metadata file (issue 13)"),
    "hotpath": ("benchmarks.hotpath_bench", "crane_fedora hot path; metrics through granian (issue 11)"),
    "pull": ("benchmarks.pull_bench", "skopeo pull: crane_fedora + nginx vs docker-registry (issue 13)"),
}


def describe_machine() -> str:
    """One paragraph about the machine, so numbers in the record can be compared honestly."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} vCPU ({cpu}), {mem_gib:.0f} GiB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}; run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--no-record", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    selected = args.only or list(BENCHMARKS)
    sections = [
        "# Benchmarks",
        "",
        "Recorded by `make bench` (`python -m benchmarks`); every table compares our code with a reference "
        "in the same run on the same machine.",
        "",
        f"**Machine:** {describe_machine()}",
        "",
    ]
    failed = []
    for key in selected:
        module, title = BENCHMARKS[key]
        print(f">> {title}: python -m {module}", file=sys.stderr, flush=True)
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", module], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
        )
        took = time.monotonic() - start
        sections += [f"## {title}", "", f"`python -m {module}` ({took:.0f} s)", ""]
        if proc.returncode != 0:
            failed.append(key)
            sections += [f"**failed with exit code {proc.returncode}**", ""]
        sections += [proc.stdout.strip(), ""]
        print(proc.stdout, flush=True)
    text = "\n".join(sections) + "\n"
    if not args.no_record and not args.only:
        (ROOT / "docs" / "benchmarks.md").write_text(text)
        print(">> recorded in docs/benchmarks.md", file=sys.stderr)
    if failed:
        print(f">> failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
