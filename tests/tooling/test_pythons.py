"""One setting moves everything: python.version 3.11 gives a 3.11 image, on Debian bookworm.

A copy of the project, with numpy added, is built with INVOKE_PYTHON_VERSION=3.11: its
.venv, requires-python and lock, its base (bookworm's, where python:3.11-slim cannot be
pulled), its test stage, its runtime and the smoke test all follow. bookworm's binutils
(2.40) is the strip that breaks numpy's OpenBLAS, rewritten by patchelf: numpy must load
and compute in the image all the same.
"""

import os
import re
import tomllib

import pytest
from support import VERSION, commit, copy_project, docker, elf_files, inv, owners, sbom_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_python_3_11_builds_on_bookworm_and_numpy_survives_its_strip(tmp_path):
    project = copy_project(tmp_path / "project", share_venv=False)
    name = f"my-project-py311-{os.getpid()}"
    env = {"INVOKE_PYTHON_VERSION": "3.11", "INVOKE_DOCKER_IMAGE": name}
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"fire (>=0.7,<0.8)",', '"fire (>=0.7,<0.8)",\n    "numpy",')
    )
    locked = inv("lock", cwd=project, env=env)
    assert locked.returncode == 0, locked.stdout[-3000:] + locked.stderr[-3000:]
    assert tomllib.loads(pyproject.read_text())["project"]["requires-python"] == ">=3.11,<3.12"
    assert inv("export", cwd=project, env=env).returncode == 0
    commit(project, "numpy, on Python 3.11")
    ref = f"{name}:{VERSION}"
    try:
        for step in (["build", "--test"], ["build"], ["smoke"]):  # what a release builds
            done = inv(*step, cwd=project, env=env, timeout=3600)
            assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
            if step[0] == "build":  # on bookworm, or on the official 3.11 image
                assert re.search(r"my-project-base:bookworm-amd64|python:3\.11-slim", done.stdout)
        run = ["run", "--rm", "--entrypoint", "/opt/venv/bin/python", ref, "-c"]
        version = docker(*run, "import sys; print(sys.version_info[:2])")
        assert version.stdout == "(3, 11)\n"
        determinant = "import numpy as np; print(round(np.linalg.det(np.eye(3) * 2)))"
        computed = docker(*run, determinant)
        assert computed.stdout == "8\n", computed.stderr
        assert sorted(elf_files(ref) - owners(sbom_of(ref, project)).keys()) == []
    finally:
        docker("image", "rm", "--force", ref, f"{name}:latest", f"{name}:test", check=False)
