"""The distroless runtime on a base laid out like the official python:3.13-slim.

The official image cannot be pulled here, so a stand-in is built from Debian's CPython
source, into /usr/local with a shared libpython (official-like/Dockerfile). The runtime
built on it must keep every promise it keeps on Debian's own python3, its SBOM included:
files that no Debian package holds (the interpreter and stdlib in /usr/local) are named
under the interpreter that syft recognises.
"""

import os
from pathlib import Path

import pytest
from support import ROLE, VERSION, docker, elf_files, image_id, inv, owners, sbom_of, structure_test

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HERE = Path(__file__).parent
BASE = "my-project-official-like:3.13-slim"


@pytest.fixture(scope="module")
def official_like(distroless) -> str:
    """The official image where it could be pulled; else the stand-in, built on the base
    that `inv base` bootstrapped (which the `distroless` fixture made sure of)."""
    if (
        image_id("python:3.13-slim")
        or docker("pull", "python:3.13-slim", check=False).returncode == 0
    ):
        return "python:3.13-slim"
    built = docker(
        "build", "--file", str(HERE / "official-like" / "Dockerfile"),
        "--label", f"{ROLE}=base", "--tag", BASE, str(HERE / "official-like"),
        env={**os.environ, "DOCKER_BUILDKIT": "1"}, check=False, timeout=1800,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return BASE


@pytest.mark.parametrize("runtime", ["distroless", "slim"])
def test_the_runtime_keeps_its_promises_on_an_official_like_base(official_like, runtime):
    name = f"my-project-official-{runtime}"
    env = {"INVOKE_DOCKER_BASE": official_like, "INVOKE_DOCKER_RUNTIME": runtime,
           "INVOKE_DOCKER_IMAGE": name}  # fmt: skip
    ref = f"{name}:{VERSION}"
    try:
        built = inv("build", env=env)
        assert built.returncode == 0, built.stderr[-3000:]
        greeted = docker("run", "--rm", ref, "say-hello", "--name", "alice")
        assert greeted.stdout == "Hello alice!\n"
        assert "  blue 6\n  red 9\n" in docker("run", "--rm", ref, "show-deps").stdout
        checked = structure_test(ref, runtime)
        assert checked.returncode == 0, checked.stdout[-4000:]
        sbom = sbom_of(ref)
        assert sorted(elf_files(ref) - owners(sbom).keys()) == []
        if runtime == "distroless":  # the interpreter in /usr/local is no Debian package's
            python = next(
                c for c in sbom["components"] if c.get("purl", "").startswith("pkg:generic/python@")
            )
            assert owners(sbom)["/usr/local/lib/libpython3.13.so.1.0"] == python["name"]
    finally:
        docker("image", "rm", "--force", ref, f"{name}:latest", check=False)
