"""Which Debian packages are behind Debian's archive: the release, its -updates and -security.

Usage (what the tasks run, in a container of the base, where apt is; the text is passed to
python3 with -c): python3 -c "$(cat outdated.py)" [--upgrade | --arch ARCH] [NAME=VERSION ...]

The packages to check are NAME=VERSION (the dpkg records of a runtime image); with none, every
package installed here is checked. --arch ARCH asks of ARCH's packages, which must then be
named: an arm64 image's, from an amd64 container of the same release, where apt runs natively.
First, apt's sources are made to name all three suites: a base bootstrapped by debootstrap names
its release alone, and the security suite lives in the archive's -security sibling, beside the
release's mirror. Then apt's indexes are fetched, and each package that has a newer version
there is one line of JSON: {"package", "version", "fixed"}. The last line is {"state": DIGEST},
a digest of the suites' package indexes, which moves whenever Debian publishes a package. Where
the archive cannot be reached, one line {"error": ...}, and exit 2. With --upgrade, every
package behind is then upgraded here, and apt's indexes are removed, as in a slim image.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

SOURCES = Path("/etc/apt/sources.list")
LISTS = Path("/var/lib/apt/lists")
ENV = dict(os.environ, LANG="C", DEBIAN_FRONTEND="noninteractive")


def three_suites() -> None:
    """Where the sources name one suite of one mirror (debootstrap's), name all three."""
    lines = [line.split() for line in SOURCES.read_text().splitlines()] if SOURCES.is_file() else []
    entries = [line for line in lines if line[:1] == ["deb"]]
    if len(entries) != 1 or entries[0][2].endswith(("-updates", "-security")):
        return  # already several suites, or a deb822 file of the official images: as they are
    _, mirror, suite, *components = entries[0]
    mirror = mirror.rstrip("/")
    SOURCES.write_text(
        f"deb {mirror} {suite} {' '.join(components)}\n"
        f"deb {mirror} {suite}-updates {' '.join(components)}\n"
        f"deb {mirror}-security {suite}-security {' '.join(components)}\n"
    )


def installed() -> dict[str, str]:
    listed = subprocess.run(
        ["dpkg-query", "--show", "--showformat", "${Package} ${Version}\n"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split(" ", 1) for line in listed.splitlines())


def candidates(names: list[str], options: list[str]) -> dict[str, str]:
    """The version that apt (with OPTIONS) would install of each of NAMES, from the suites."""
    policy = subprocess.run(["apt-cache", *options, "policy", *names], capture_output=True,
                            text=True, env=ENV, check=True).stdout  # fmt: skip
    found = re.findall(r"^(\S+?)(?::\S+)?:\n(?:  .*\n)*?  Candidate: (\S+)$", policy, re.MULTILINE)
    return {name: version for name, version in found if version != "(none)"}


def newer(have: str, candidate: str) -> bool:
    compared = subprocess.run(["dpkg", "--compare-versions", have, "lt", candidate], check=False)
    return compared.returncode == 0


def state(architecture: str) -> str:
    """A digest of the suites' package indexes for ARCHITECTURE, as their Release files name
    them: it moves when a package does, not when a suite is merely signed again."""
    index = re.compile(
        rf"^ ([0-9a-f]{{64}}) +\d+ \S+/binary-{architecture}/Packages$", re.MULTILINE
    )
    hashes = sorted(
        found for path in LISTS.glob("*Release") for found in index.findall(path.read_text())
    )
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


def main(upgrade: bool, packages: list[str], arch: str | None) -> int:
    three_suites()
    wanted = dict(argument.split("=", 1) for argument in packages) or installed()
    architecture = arch or subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                          text=True, check=True).stdout.strip()  # fmt: skip
    # Another architecture's indexes, in place of this one's: apt reads them natively.
    options = (
        ["-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures={arch}"] if arch else []
    )
    updated = subprocess.run(["apt-get", *options, "update", "-qq"], capture_output=True,
                             text=True, env=ENV)  # fmt: skip
    # apt-get update exits 0 when a suite could not be fetched: its warnings tell.
    if updated.returncode or re.search(r"^[WE]: Failed to fetch", updated.stderr, re.MULTILINE):
        said = (updated.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
        print(json.dumps({"error": said}), flush=True)
        return 2
    fixes = candidates(sorted(wanted), options)
    behind = {
        name: fixes[name]
        for name in sorted(wanted)
        if name in fixes and newer(wanted[name], fixes[name])
    }
    for name, fixed in behind.items():
        print(json.dumps({"package": name, "version": wanted[name], "fixed": fixed}), flush=True)
    print(json.dumps({"state": state(architecture)}), flush=True)
    if upgrade:
        if behind:
            subprocess.run(
                ["apt-get", "upgrade", "-y", "-qq"], env=ENV, check=True, stdout=sys.stderr
            )
        subprocess.run(["apt-get", "clean"], check=True)
        for path in LISTS.iterdir():
            if path.is_file():
                path.unlink()
    return 0


ARGS = sys.argv[1:]
ARCH = ARGS[ARGS.index("--arch") + 1] if "--arch" in ARGS else None
sys.exit(main("--upgrade" in ARGS and not ARCH, [arg for arg in ARGS if "=" in arg], ARCH))
