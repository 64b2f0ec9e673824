"""Which Python: python.version, the interpreter that has it, and what follows from it.

One setting moves everything: .venv, requires-python (and so the lock), the base image
(`python:VERSION-slim`, or Debian's release that ships that Python), and the image itself.
"""

import re
import shlex
import shutil
from pathlib import Path

from invoke import Context, Exit

from tooling.commands import probe

# The Debian release whose python3 is each version: a base can be bootstrapped from it.
DEBIAN = {"3.11": "bookworm", "3.13": "trixie"}
REQUIRES_PYTHON = re.compile(r'^requires-python = "([^"]*)"$', re.MULTILINE)


def version(c: Context) -> str:
    """python.version, checked: MAJOR.MINOR."""
    wanted = str(c.python.version)
    if not re.fullmatch(r"3\.\d+", wanted):
        raise Exit(
            f"error: python.version is {wanted!r}, not a Python 3 version such as 3.13. "
            "Fix INVOKE_PYTHON_VERSION or invoke.yaml."
        )
    return wanted


def interpreter(c: Context) -> str:
    """The path of a python that runs as python.version: on PATH, else pyenv's."""
    wanted = version(c)
    command = f"python{wanted}"
    asked = probe(c, shlex.join([command, "-c", "import sys; print(sys.executable)"]))
    if asked.ok:
        return asked.stdout.strip()
    # pyenv puts a shim for every version it has on PATH, which runs only the selected ones.
    if shutil.which("pyenv"):
        prefix = probe(c, shlex.join(["pyenv", "prefix", wanted])).stdout.strip()
        if prefix and (Path(prefix) / "bin" / command).is_file():
            return str(Path(prefix) / "bin" / command)
    raise Exit(
        f"error: there is no Python {wanted} here ({command} is not on PATH, nor in pyenv). "
        "Install it, or set python.version (INVOKE_PYTHON_VERSION) to one that is here."
    )


def requires(wanted: str) -> str:
    """The requires-python of an app that runs on exactly one Python: >=3.13,<3.14."""
    major, minor = wanted.split(".")
    return f">={wanted},<{major}.{int(minor) + 1}"


def align(c: Context) -> None:
    """Set pyproject.toml's requires-python to python.version's, when it is another one.

    The lock follows it: `poetry lock` resolves for that Python alone, so that a dependency
    which needs a newer Python than others support (numpy 2.5 needs 3.12) still resolves.
    """
    wanted = requires(version(c))
    pyproject = Path("pyproject.toml")
    text = pyproject.read_text()
    current = REQUIRES_PYTHON.search(text)
    if not current:
        raise Exit(
            'error: pyproject.toml has no `requires-python = "..."` line in [project]. '
            f'Add `requires-python = "{wanted}"`.'
        )
    if current[1] == wanted:
        return
    print(f"pyproject.toml: requires-python {current[1]} -> {wanted}, for python.version")
    if not c.config.run.dry:
        pyproject.write_text(REQUIRES_PYTHON.sub(f'requires-python = "{wanted}"', text, count=1))


def base(c: Context) -> str:
    """The base image: docker.base, else the official slim image of python.version."""
    return c.docker.base or f"python:{version(c)}-slim"


def suite(c: Context, wanted_base: str) -> str:
    """The Debian release to bootstrap python.version from, or a clear line saying none can."""
    wanted = version(c)
    if wanted not in DEBIAN:
        releases = ", ".join(f"{release} has {python}" for python, release in DEBIAN.items())
        raise Exit(
            f"error: cannot pull {wanted_base}, and no Debian release ships Python {wanted} to "
            f"bootstrap one from ({releases}). Make {wanted_base} available (docker pull, "
            f"docker load), or set python.version to {' or '.join(DEBIAN)}."
        )
    return DEBIAN[wanted]
