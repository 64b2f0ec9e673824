"""Which Debian packages are behind Debian's archive: the release, its -updates and -security.

Usage (what the tasks run, in a container of the base, where apt is; the text is passed to
python3 with -c): python3 -c "$(cat outdated.py)" [--upgrade] [NAME=VERSION ...]

The packages to check are NAME=VERSION (the dpkg records of a runtime image); with none,
every package installed here is checked. First, apt's sources are made to name all three
suites: a base bootstrapped by debootstrap names its release alone, and the security suite
lives in the archive's -security sibling, beside the release's mirror. Then apt's indexes are
fetched, and each package that has a newer version there is one line of JSON: {"package",
"version", "fixed"}. The last line is {"state": DIGEST}, a digest of the suites' package
indexes, which moves whenever Debian publishes a package. Where the archive cannot be reached,
one line {"error": ...}, and exit 2. With --upgrade, every package behind is then upgraded
here, and apt's indexes are removed, as in a slim image.
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


def candidates(names: list[str]) -> dict[str, str]:
    """The version that apt would install of each of NAMES, from the three suites."""
    policy = subprocess.run(["apt-cache", "policy", *names], capture_output=True, text=True,
                            env=ENV, check=True).stdout  # fmt: skip
    found = re.findall(r"^(\S+?)(?::\S+)?:\n(?:  .*\n)*?  Candidate: (\S+)$", policy, re.MULTILINE)
    return {name: version for name, version in found if version != "(none)"}


def newer(have: str, candidate: str) -> bool:
    compared = subprocess.run(["dpkg", "--compare-versions", have, "lt", candidate], check=False)
    return compared.returncode == 0


def state() -> str:
    """A digest of the suites' package indexes for this architecture, as their Release files
    name them: it moves when a package does, not when a suite is merely signed again."""
    architecture = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                  text=True, check=True).stdout.strip()  # fmt: skip
    index = re.compile(
        rf"^ ([0-9a-f]{{64}}) +\d+ \S+/binary-{architecture}/Packages$", re.MULTILINE
    )
    hashes = sorted(
        found for path in LISTS.glob("*Release") for found in index.findall(path.read_text())
    )
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


def main(upgrade: bool, packages: list[str]) -> int:
    three_suites()
    wanted = dict(argument.split("=", 1) for argument in packages) or installed()
    updated = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=ENV)
    # apt-get update exits 0 when a suite could not be fetched: its warnings tell.
    if updated.returncode or re.search(r"^[WE]: Failed to fetch", updated.stderr, re.MULTILINE):
        said = (updated.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
        print(json.dumps({"error": said}), flush=True)
        return 2
    fixes = candidates(sorted(wanted))
    behind = {
        name: fixes[name]
        for name in sorted(wanted)
        if name in fixes and newer(wanted[name], fixes[name])
    }
    for name, fixed in behind.items():
        print(json.dumps({"package": name, "version": wanted[name], "fixed": fixed}), flush=True)
    print(json.dumps({"state": state()}), flush=True)
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


sys.exit(main("--upgrade" in sys.argv[1:], [arg for arg in sys.argv[1:] if "=" in arg]))
