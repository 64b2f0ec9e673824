"""Debian's security fixes: which packages of an image are behind Debian's archive.

The archive is the authority, not a scanner's database: wherever apt-get works, the release,
its -updates and its -security suites say which version of each package is current. The
check runs docker/outdated.py in a container of the base, where apt is, against the packages
that the image's own dpkg records list (a runtime image) or that dpkg has installed (a base).
For another architecture's image, a base of the engine's own platform asks, where there is
one: apt, emulated, takes half a minute to read the archive's indexes.
"""

import json
import time
from dataclasses import dataclass, field

from invoke import Context, Exit

from shipyard.tooling import engine, platforms
from shipyard.tooling.commands import shown
from shipyard.tooling.project import IN_IMAGE

SCRIPT = IN_IMAGE / "outdated.py"
# What a runtime image's python prints: "NAME VERSION" for each Debian package its dpkg records
# list, in status.d (the distroless tree's, as Google's distroless writes them) or in status.
RECORDS = """\
import pathlib, re
dpkg = pathlib.Path("/var/lib/dpkg")
records = sorted((dpkg / "status.d").glob("*"))
stanzas = [path.read_text() for path in records if not path.name.endswith(".md5sums")]
status = dpkg / "status"
stanzas += status.read_text().split("\\n\\n") if status.is_file() else []
for stanza in stanzas:
    name = re.search(r"^Package: (\\S+)$", stanza, re.M)
    version = re.search(r"^Version: (\\S+)$", stanza, re.M)
    gone = re.search(r"^Status: .* (not-installed|config-files)$", stanza, re.M)
    if name and version and not gone:
        print(name[1], version[1])
"""


@dataclass
class Report:
    """What the archive says of an image's packages."""

    behind: list[dict] = field(default_factory=list)  # {"package", "version", "fixed"}
    checked: int = 0
    # A digest of the suites' package indexes: it moves whenever Debian publishes a package.
    state: str | None = None
    error: str | None = None  # why the archive could not be asked, as whoever failed says it
    seconds: float = 0.0

    def lines(self, ref: str, fix: str) -> list[str]:
        """One line for each package behind: what REF holds, what the archive has, and FIX."""
        return [
            f"error: {ref} holds {item['package']} {item['version']}, and Debian's archive has "
            f"{item['fixed']}, with its fixes. {fix}"
            for item in self.behind
        ]


def outdated(
    c: Context,
    base: str,
    platform: str,
    packages: list[str] = (),
    native: str | None = None,
    role: str = "run",
) -> Report:
    """Ask Debian's archive, from a container of BASE on PLATFORM, which of PACKAGES (NAME=VERSION;
    by default what BASE has installed) are behind it; or from one of NATIVE, a base of the
    same Debian release on the engine's own platform, for PLATFORM's architecture. ROLE labels
    its containers: `upgrade` where a base is kept current, as its upgrade's container is."""
    start = time.monotonic()
    asker, arch = base, []
    if native:
        packages = packages or installed(c, base, platform, role)
    if native and packages:  # else BASE itself asks: the script lists what dpkg has installed
        asker, arch, platform = native, ["--arch", platforms.debian(platform)], platforms.own(c)
    argv = engine.throwaway(platform, role)
    script = ["python3", "-c", SCRIPT.read_text(), *arch, *packages]
    ran = engine.docker(c, *argv, asker, *script, hide=True, warn=True)
    report = read(ran.stdout)
    report.checked, report.seconds = len(packages), time.monotonic() - start
    if ran.failed and not report.error and not c.config.run.dry:  # the container did not run
        report.error = f"the container that asks Debian's archive failed (exit {ran.exited})"
        report.error += shown(ran)
    elif report.error:  # the script ran, and says why the archive could not be asked
        report.error = f"Debian's archive cannot be reached ({report.error})"
    return report


def installed(c: Context, base: str, platform: str, role: str = "run") -> list[str]:
    """What dpkg has installed in BASE on PLATFORM, as NAME=VERSION: dpkg-query, quick even
    emulated."""
    listed = engine.docker(
        c, *engine.throwaway(platform, role),
        "--network", "none", "--entrypoint", "dpkg-query", base,
        "--show", "--showformat", "${db:Status-Status} ${Package}=${Version}\n",
        hide=True, warn=True,
    )  # fmt: skip
    lines = [line.split() for line in listed.stdout.splitlines()]
    return [line[1] for line in lines if line[:1] == ["installed"] and len(line) == 2]


def audit(c: Context, ref: str, platform: str, base: str, native: str | None = None) -> Report:
    """The Debian packages of image REF, as its own dpkg records list them, against the archive,
    asked from a container of BASE (REF itself may have no apt, nor a shell), or of NATIVE
    (see outdated)."""
    listed = engine.docker(
        c, *engine.throwaway(platform),
        "--network", "none", "--entrypoint", "/opt/venv/bin/python", ref, "-c", RECORDS,
        hide=True, warn=True,
    )  # fmt: skip
    if listed.failed and not c.config.run.dry:
        raise Exit(f"error: cannot read the dpkg records of {ref} ({platform}). Build it first.")
    packages = ["=".join(line.split()) for line in listed.stdout.splitlines() if line.strip()]
    if not packages:  # no Debian package at all: nothing can be behind
        return Report()
    return outdated(c, base, platform, packages, native)


def table(report: Report) -> str:
    """REPORT as a table: each package behind, its version, and the fixed one."""
    rows = [("package", "in the image", "in Debian's archive")]
    rows += [(item["package"], item["version"], item["fixed"]) for item in report.behind]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def read(output: str) -> Report:
    """What docker/outdated.py said, in its OUTPUT: a line of JSON for each thing it says."""
    said = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return Report(
        behind=[line for line in said if "package" in line],
        state=next((line["state"] for line in said if "state" in line), None),
        error=next((line["error"] for line in said if "error" in line), None),
    )
