"""Which Python: python.version, the interpreter that has it, and what follows from it.

One setting moves everything: .venv, requires-python (and so the lock), the base image
(`python:VERSION-slim`, or Debian's release that ships that Python), and the image itself.
"""

import re
import shlex
import shutil
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling.commands import probe

# The Debian release whose python3 is each version: a base can be bootstrapped from it.
DEBIAN = {"3.11": "bookworm", "3.13": "trixie"}
REQUIRES_PYTHON = re.compile(r'^requires-python = "([^"]*)"$', re.MULTILINE)
# Poetry's own constraint, in [tool.poetry.dependencies], where [project] has none.
POETRY_PYTHON = re.compile(r"""^python = ["']([^"']*)["']""", re.MULTILINE)


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
    """Set pyproject.toml's requires-python to python.version's, where it excludes that Python.

    The lock follows it: `poetry lock` resolves for that Python alone, so that a dependency
    which needs a newer Python than others support (numpy 2.5 needs 3.12) still resolves. A
    constraint that allows python.version (an app's ">=3.10") is the app's, and stays.
    """
    wanted = version(c)
    pyproject = Path("pyproject.toml")
    text = pyproject.read_text()
    current = REQUIRES_PYTHON.search(text)
    poetry_python = POETRY_PYTHON.search(text)
    if not current and not poetry_python:
        raise Exit(
            'error: pyproject.toml has no `requires-python = "..."` line in [project]. '
            f'Add `requires-python = "{requires(wanted)}"`.'
        )
    constraint = current[1] if current else poetry_python[1]
    if allows(constraint, wanted):
        return
    if not current:  # poetry's own python constraint: the app's to change, not ours
        raise Exit(
            f'error: pyproject.toml allows python "{constraint}", not python.version {wanted}. '
            "Set python.version (INVOKE_PYTHON_VERSION) to a Python that it allows."
        )
    print(f"pyproject.toml: requires-python {current[1]} -> {requires(wanted)}, for python.version")
    if not c.config.run.dry:
        replaced = f'requires-python = "{requires(wanted)}"'
        pyproject.write_text(REQUIRES_PYTHON.sub(replaced, text, count=1))


def allows(constraint: str, wanted: str) -> bool:
    """Whether CONSTRAINT (PEP 440's, or poetry's: ^3.9, ~3.9, A || B) allows Python WANTED
    (MAJOR.MINOR, as X.Y.0 and any later patch release of it)."""
    release = tuple(map(int, wanted.split(".")))
    for alternative in constraint.split("||"):
        clauses = [clause.strip() for clause in re.split(r",|\s(?=[<>=!~^])", alternative)]
        if all(_holds(clause, release) for clause in clauses if clause and clause != "*"):
            return True
    return False


def _holds(clause: str, release: tuple[int, ...]) -> bool:
    """Whether one CLAUSE (>=3.9, <4, ==3.13.*, ^3.9, ~3.9, ~=3.9, 3.13) allows RELEASE's
    minor version, for some patch release of it."""
    found = re.fullmatch(r"(>=|<=|==|!=|~=|>|<|\^|~|=)?\s*(\d+(?:\.\d+)*)(\.\*)?", clause)
    if not found:
        return True  # what this reading does not know, poetry judges when it locks
    operator, given = found[1] or "==", tuple(map(int, found[2].split(".")))
    minor = release[:2]
    head = given[:2] + (0,) * (2 - len(given[:2]))
    if operator in ("==", "="):
        return given[:2] == minor if len(given) >= 2 else given[0] == minor[0]
    if operator == "!=":
        return not (len(given) == 2 and given == minor)
    if operator in (">=", ">"):  # 3.13.1 > 3.13: a later patch release may be allowed
        return minor >= head
    if operator == "<":
        return minor < head or (minor == head and len(given) > 2 and given[2] > 0)
    if operator == "<=":
        return minor <= head
    upper = {
        "^": (given[0] + 1, 0) if given[0] else (0, given[1] + 1),
        "~": (head[0], head[1] + 1) if len(given) > 1 else (given[0] + 1, 0),
        "~=": (given[0] + 1, 0) if len(given) == 2 else (head[0], head[1] + 1),
    }[operator]
    return head <= minor < upper


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
