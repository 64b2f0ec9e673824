"""Poetry, run on .venv through the package index that pip uses, and one line for its failures."""

import hashlib
import re
import shlex
import urllib.parse
from pathlib import Path

from invoke import Context, Exit, Result

from shipyard.tooling import commands, secrets
from shipyard.tooling.project import POETRY, ROOT, VENV

# What poetry prints, once a package, when the index offers it no file it can install.
NO_CANDIDATES = re.compile(
    r"Unable to find installation candidates for (\S+)|Package (\S+) .*not found"
)
# What poetry prints when a dependency with no wheel for this machine fails to build.
UNBUILT = re.compile(r"originates from the build backend.* issues with (\S+) \(([^)]+)\)")


def run(c: Context, *args: str, **kwargs) -> Result:
    """Run poetry on .venv. It reads the index through the mirror plugin, as pip reads it: the
    simple API, which every index serves (poetry's own PyPI client also needs a JSON API); and
    it trusts the CA bundle that pip trusts, wherever pip finds it (its own config file, say),
    as builds do: poetry's HTTP client would otherwise take certifi's alone."""
    env = {
        "VIRTUAL_ENV": str(ROOT / VENV),
        "POETRY_VIRTUALENVS_CREATE": "false",
        "POETRY_PYPI_MIRROR_URL": index(c),
    }
    bundle = secrets.ca_bundle(c)
    if bundle:
        env |= {"REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle}
    return c.run(shlex.join([str(POETRY / "bin" / "poetry"), *args]), env=env, **kwargs)


def index(c: Context) -> str:
    return secrets.index(c) or secrets.pypi(c)


def ok(c: Context, result: Result, what: str, fix: str) -> Result:
    """commands.ok, with the likely cause when poetry found no files to install, or could
    not build one from source."""
    output = result.stdout + result.stderr if result.failed else ""
    if missing := NO_CANDIDATES.search(output):
        shown = urllib.parse.urlsplit(index(c))
        shown = shown._replace(netloc=shown.netloc.rpartition("@")[2]).geturl()  # no credentials
        raise Exit(
            f"error: {what} failed: poetry found no installation candidates for "
            f"{missing[1] or missing[2]} at {shown}. That index may not serve it, or not be "
            "reachable: set pypi.mirror (INVOKE_PYPI_MIRROR) to one that does.",
            code=result.exited,
        )
    if unbuilt := UNBUILT.search(output):
        raise Exit(
            f"error: {what} failed: {unbuilt[1]} {unbuilt[2]} has no wheel for this machine, "
            "and building it from source failed (see above). Install the Debian packages its "
            "build needs here (its headers, such as libpq-dev), as docker.build_packages names "
            "them for the image, then run it again.",
            code=result.exited,
        )
    return commands.ok(result, what, fix)


def export_header() -> str:
    """The first line of an export: which lock it came from, so that `build` can tell."""
    lock = hashlib.sha256(Path("poetry.lock").read_bytes()).hexdigest()
    return f"# Exported from poetry.lock (sha256 {lock}) by `inv export`; do not edit.\n"
