"""Remove from a configured Debian root filesystem the packages only its construction needed.

    prune-base.py ROOT --keep python3 ca-certificates ... --build-only dpkg debconf ...

mmdebstrap installs the Essential set (shells, coreutils, perl, dpkg, ...) because the
maintainer scripts of the packages we want run with them. Once those scripts have run, a
container that only starts /opt/modelsec/bin/modelsec needs none of it. This keeps the
packages reachable from --keep through Depends and Pre-Depends, never walking into a
--build-only package (dpkg, debconf, perl-base and openssl are needed to *configure*
python3 and ca-certificates, not to run them), and removes every other package the way
dpkg would record it: its files (those no kept package also lists), its
/var/lib/dpkg/info entries and its stanza in /var/lib/dpkg/status. So vulnerability
scanners reading the status file see exactly the packages whose files are present.

Files that maintainer scripts generated (compiled stdlib bytecode, /etc/ssl/certs, the
users and groups, ld.so.cache) belong to no package list and stay.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The merged-/usr aliases: a list may name /bin/sh while another names /usr/bin/sh.
MERGED_ALIASES = ("bin", "sbin", "lib", "lib64")


@dataclass
class Package:
    name: str
    stanza: str
    depends: list[list[str]]  # each inner list: alternatives, first installed one counts
    provides: list[str] = field(default_factory=list)


def _names(field_value: str) -> list[list[str]]:
    groups = []
    for group in field_value.split(","):
        alternatives = [re.split(r"[\s(:]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        groups.append([alt for alt in alternatives if alt])
    return [g for g in groups if g]


def read_status(path: Path) -> list[Package]:
    packages = []
    for stanza in path.read_text().split("\n\n"):
        if not stanza.strip():
            continue
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1].isspace() and key:
                fields[key] += " " + line.strip()
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        depends = _names(fields.get("Pre-Depends", "")) + _names(fields.get("Depends", ""))
        provides = [alt for group in _names(fields.get("Provides", "")) for alt in group]
        packages.append(Package(fields["Package"], stanza.strip("\n"), depends, provides))
    return packages


def runtime_closure(packages: list[Package], keep: list[str], build_only: set[str]) -> set[str]:
    by_name = {p.name: p for p in packages}
    providers: dict[str, str] = {}
    for package in packages:
        for virtual in package.provides:
            providers.setdefault(virtual, package.name)
    missing = [name for name in keep if name not in by_name]
    if missing:
        sys.exit(f"prune-base: --keep names packages that are not installed: {missing}")
    wanted: set[str] = set()
    todo = list(keep)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        for alternatives in by_name[name].depends:
            # The first alternative installed under its own name or provided by a package.
            installed = [alt if alt in by_name else providers.get(alt) for alt in alternatives]
            chosen = next((package for package in installed if package), None)
            if chosen is not None and chosen not in build_only:
                todo.append(chosen)
    return wanted


def canonical(path: str, root: Path) -> str:
    parts = path.lstrip("/").split("/", 1)
    if parts[0] in MERGED_ALIASES and (root / parts[0]).is_symlink():
        return "/usr/" + path.lstrip("/")
    return path


def info_files(info: Path, name: str) -> list[Path]:
    return [p for p in info.iterdir() if p.name.split(".", 1)[0].split(":", 1)[0] == name]


def listed(info: Path, name: str) -> list[str]:
    lists = [p for p in info_files(info, name) if p.suffix == ".list"]
    return [line for p in lists for line in p.read_text().splitlines() if line]


def prune(root: Path, keep: list[str], build_only: set[str]) -> list[str]:
    status = root / "var/lib/dpkg/status"
    info = root / "var/lib/dpkg/info"
    packages = read_status(status)
    wanted = runtime_closure(packages, keep, build_only)
    dropped = [p.name for p in packages if p.name not in wanted]
    kept_paths = {canonical(path, root) for name in wanted for path in listed(info, name)}
    directories: set[str] = set()
    for name in dropped:
        for path in listed(info, name):
            if canonical(path, root) in kept_paths or path.count("/") < 2:
                continue  # a kept package's, or a top-level directory (/dev, /proc, /tmp: mount points)
            target = root / path.lstrip("/")
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                directories.add(path)
        for entry in info_files(info, name):
            entry.unlink()
    for path in sorted(directories, key=len, reverse=True):  # deepest first
        target = root / path.lstrip("/")
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()
    _drop_dangling_alternatives(root)
    status.write_text("\n\n".join(p.stanza for p in packages if p.name in wanted) + "\n")
    return dropped


def _drop_dangling_alternatives(root: Path) -> None:
    """update-alternatives links whose every target left with a dropped package."""
    for folder in ("etc/alternatives", "usr/bin", "usr/sbin"):
        if not (root / folder).is_dir():
            continue
        for link in sorted((root / folder).iterdir()):
            if link.is_symlink() and not _resolves(root, link):
                link.unlink()
    for record in (root / "var/lib/dpkg/alternatives").glob("*"):
        if not (root / "etc/alternatives" / record.name).is_symlink():
            record.unlink()


def _resolves(root: Path, link: Path, depth: int = 0) -> bool:
    """Whether LINK's target exists inside ROOT (absolute targets are ROOT-relative)."""
    if depth > 16:
        return False
    target = os.readlink(link)
    path = root / target.lstrip("/") if target.startswith("/") else link.parent / target
    if path.is_symlink():
        return _resolves(root, path, depth + 1)
    return path.exists()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--keep", nargs="+", required=True)
    parser.add_argument("--build-only", nargs="*", default=[])
    args = parser.parse_args(argv)
    dropped = prune(args.root, args.keep, set(args.build_only))
    print(
        f"prune-base: removed {len(dropped)} packages only the build needed: {' '.join(sorted(dropped))}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
