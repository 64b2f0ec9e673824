"""A release from any state that its own steps can bring up to date, as a user meets them.

In a fresh copy of the project, with its own .venv:
1. a dependency is added with `inv poetry -- add`, and `inv release` runs straight away.
   python-magic opens libmagic by name, which no reading of ELF files can see: the import
   check sees it fail, and the build finds trixie's libmagic1t64 itself, builds again with
   it, and says so; the release passes, and names the files to commit;
2. python.version 3.11 relocks, exports, and builds on Debian bookworm, whose libmagic is
   libmagic1, found the same way, and where bookworm's binutils (2.40) is the strip that
   breaks numpy's OpenBLAS, rewritten by patchelf: numpy must load and compute all the same;
3. back on 3.13, it releases again, starting with what trixie's build found (no second
   build), and names what differs from the commit.
"""

import os
import re
import subprocess
import tomllib

import pytest
from support import VERSION, commit, copy_project, docker, elf_files, inv, owners, sbom_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TRACKED = ["poetry.lock", "pyproject.toml", "requirements-test.txt", "requirements.txt"]


def release(project, env) -> subprocess.CompletedProcess:
    return inv("release", cwd=project, env=env, timeout=3600)


def found(released: subprocess.CompletedProcess) -> list[str]:
    """The packages that the release found python-magic to open by name, and built again with."""
    said = r"^magic opens libmagic by name: Debian's (\S+) ships it; building again with it$"
    return re.findall(said, released.stdout, re.MULTILINE)


def to_commit(released: subprocess.CompletedProcess) -> list[str]:
    """The files that the release's summary names, to commit."""
    found = re.search(r"not committed yet, and built into this image: (.*)\. Commit them\.",
                      released.stdout)  # fmt: skip
    return sorted(found[1].split(", ")) if found else []


def test_a_release_follows_a_new_dependency_and_python_3_11_and_back(tmp_path):
    project = copy_project(tmp_path / "project", share_venv=False)
    name = f"my-project-py-{os.getpid()}"
    env = {"INVOKE_DOCKER_IMAGE": name}
    ref = f"{name}:{VERSION}"
    try:
        added = inv("poetry", "--", "add", "python-magic", "numpy>=2", cwd=project, env=env)
        assert added.returncode == 0, added.stdout[-3000:] + added.stderr[-3000:]
        # 1. Straight away: libmagic's package is found, the runtime built again, released.
        released = release(project, env)
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
        assert found(released) == ["libmagic1t64"]
        assert to_commit(released) == TRACKED  # the exports name the lock they came from
        commit(project, "python-magic and numpy")
        # 2. Python 3.11: relocked, exported, built on bookworm; numpy survives its strip.
        released = release(project, {**env, "INVOKE_PYTHON_VERSION": "3.11"})
        assert released.returncode == 0, released.stdout[-4000:] + released.stderr[-4000:]
        assert re.search(r"my-project-base:bookworm-amd64|python:3\.11-slim", released.stdout)
        assert found(released) == ["libmagic1"]
        assert to_commit(released) == TRACKED
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        assert pyproject["project"]["requires-python"] == ">=3.11,<3.12"
        run = ["run", "--rm", "--entrypoint", "/opt/venv/bin/python", ref, "-c"]
        assert docker(*run, "import sys; print(sys.version_info[:2])").stdout == "(3, 11)\n"
        determinant = "import numpy as np; print(round(np.linalg.det(np.eye(3) * 2)))"
        computed = docker(*run, determinant)
        assert computed.stdout == "8\n", computed.stderr
        assert sorted(elf_files(ref) - owners(sbom_of(ref, project)).keys()) == []
        # 3. And back: requires-python is what was committed. (poetry keeps the versions that
        # the 3.11 lock holds where they still fit, numpy 2.4: the lock may differ, and is named;
        # where it does, libmagic1t64 is found again, as for any new lock.)
        released = release(project, env)
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
        assert found(released) in ([], ["libmagic1t64"])
        assert "pyproject.toml" not in to_commit(released)
        assert docker(*run, "import sys; print(sys.version_info[:2])").stdout == "(3, 13)\n"
    finally:
        docker("image", "rm", "--force", ref, f"{name}:latest", f"{name}:test", check=False)
