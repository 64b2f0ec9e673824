"""pip's package index and CA bundle: found where pip finds them, handed to builds as secrets."""

import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling.commands import probe
from shipyard.tooling.project import NAME

_pip_settings: dict[str, str] = {}  # asked of pip once a process: each question costs 0.3 s
# A line of `pip config list`: global.cert='/etc/ssl/certs/ca-certificates.crt'.
SETTING = re.compile(r"^([\w.-]+)='(.*)'$", re.MULTILINE)


def pip_setting(c: Context, key: str) -> str:
    """pip's own setting KEY (such as global.cert), or "" where pip has none. pip's settings
    are read merged, from every file it reads (`pip config get` misses a key that a file other
    than the last one holds, as where /etc/pip.conf and /etc/xdg/pip/pip.conf are both)."""
    if "pip" not in _pip_settings:
        listed = probe(c, shlex.join([sys.executable, "-m", "pip", "config", "list"]))
        _pip_settings.update(SETTING.findall(listed.stdout) if listed.ok else [])
        _pip_settings["pip"] = "asked"
    return _pip_settings.get(key, "")


def index(c: Context) -> str | None:
    """The package index configured here: pypi.mirror, else pip's own (PIP_INDEX_URL, index-url).

    None means PyPI itself, as pip knows it.
    """
    return c.pypi.mirror or os.environ.get("PIP_INDEX_URL") or pip_setting(c, "global.index-url")


def pypi(c: Context) -> str:
    """The simple index that pip uses where none is configured: PyPI's, as pip itself names it."""
    if "pypi" not in _pip_settings:
        code = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"
        _pip_settings["pypi"] = probe(c, shlex.join([sys.executable, "-c", code])).stdout.strip()
    return _pip_settings["pypi"]


def ca_bundle(c: Context) -> str | None:
    """The CA bundle pip uses here: config, PIP_CERT, pip's setting, or OpenSSL's variables."""
    candidates = (
        ("pypi.cert", lambda: c.pypi.cert),
        ("PIP_CERT", lambda: os.environ.get("PIP_CERT")),
        ("pip's cert setting", lambda: pip_setting(c, "global.cert")),
        ("SSL_CERT_FILE", lambda: os.environ.get("SSL_CERT_FILE")),
        ("REQUESTS_CA_BUNDLE", lambda: os.environ.get("REQUESTS_CA_BUNDLE")),
    )
    for origin, find in candidates:
        path = find()
        if path and not Path(path).is_file():
            raise Exit(f"error: the CA bundle {path} (from {origin}) is not a file. Fix {origin}.")
        if path:
            return path
    return None


@contextmanager
def build_secrets(c: Context) -> Iterator[list[str]]:
    """Flags that hand pip's CA bundle and index URL to a build as secrets, never as a layer."""
    flags = []
    cert = ca_bundle(c)
    if cert:
        flags += ["--secret", f"id=pip_cert,src={cert}"]
    url = index(c)
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-secrets-") as folder:
        if url:  # a URL may carry credentials, so it travels in a file, not on a command line
            path = Path(folder) / "pip_index_url"
            path.write_text(url)
            flags += ["--secret", f"id=pip_index_url,src={path}"]
        yield flags
