"""Your app, not ours: real poetry projects, from their PyPI sdists, take the collection with
`inv adopt` and release, with no edit of the Dockerfile or of tasks.py.

Each project is pinned by version and sha256. Its sdist is unpacked (files dated 1970, as
poetry-core writes them), made a git repository, given its settings in invoke.yaml (only what
deselects network tests, and the Debian packages that its tests need), adopted, and released
by an unprivileged developer who may use the Docker Engine, with a clean environment: the CA
that re-signs HTTPS here is named in pip's config file alone. Then its script answers --help
in its image, run hardened under a uid that the image does not know. The bases are shared:
each project's bootstrapped base is this project's, under its own name.
"""

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import DOCKER, PODMAN, commit, context, docker, inv, need, pypi_simple_url

from shipyard.tooling import bootstrap, imports

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DEVELOPER = "rootless"  # .ci/run makes the user, in the docker group


@dataclass
class Real:
    """A real project: its sdist's version and sha256, and its settings (invoke.yaml)."""

    version: str
    sha256: str
    settings: str = ""
    figures: dict = field(default_factory=dict)


PROJECTS = {
    # pydantic-core and rpds-py (Rust); network tests marked; --cov and a junit file in addopts
    "openapi-spec-validator": Real(
        "0.9.0",
        "6d648cff6490ebb799dcfe273792f2941c050158854c721f086599d845da78b8",
        "test:\n  markers: not network\n",
    ),
    # src/ layout, a build script (the wheel is the target's), libmagic opened by name, git
    "reuse": Real(
        "6.2.0",
        "4feae057a2334c9a513e6933cdb9be819d8b822f3b5b435a36138bd218897d23",
        "docker:\n  test_packages: git libmagic1\n",
    ),
    # git in the tests, and one test that clones from the network without a marker
    "dunamai": Real(
        "1.26.5",
        "b1435d8d2b0aceef240cde8e8f6ba910e85b1aa0e22fa9e21454d2d22fb0a89c",
        "docker:\n  test_packages: git\ntest:\n"
        "  deselect: tests/integration/test_dunamai.py::test__version__from_git__shallow\n",
    ),
    # src/ layout, and a wheel of its own that a build script makes platform-specific
    "protokolo": Real(
        "3.1.0",
        "9bf29a85f32be720e93e251018e58fbf7317b9795e32f102205c1a30f1c00b93",
    ),
}


@dataclass
class Developer:
    """An unprivileged user with the Docker Engine, as a developer is."""

    name: str
    home: Path

    def run(self, *argv: str, cwd: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
        """Run ARGV in CWD as the user, in a clean environment: no variable of root's reaches
        it, the CA's included (pip's config file alone names it)."""
        settings = {
            "HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
            "PATH": f"{self.home}/.local/bin:/usr/local/bin:/usr/bin:/bin",
            "INVOKE_DOCKER_COMMAND": DOCKER[0], "INVOKE_PYPI_MIRROR": pypi_simple_url(),
        }  # fmt: skip
        command = ["runuser", "-u", self.name, "--", "env", "-i", *map("=".join, settings.items())]
        return subprocess.run(
            [*command, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def developer() -> Developer:
    need(not PODMAN, "the developer releases on the Docker Engine")
    need(os.geteuid() == 0, "needs root, to act as another user")
    try:
        account = pwd.getpwnam(DEVELOPER)
    except KeyError:
        need(False, f"no user {DEVELOPER}: .ci/run makes one")
    need(
        docker("info", check=False).returncode == 0 and "docker" in _groups(DEVELOPER),
        f"{DEVELOPER} may not use the Docker Engine: .ci/run adds it to the group docker",
    )
    return Developer(DEVELOPER, Path(account.pw_dir))


def _groups(user: str) -> str:
    return subprocess.run(["id", "-nG", user], capture_output=True, text=True).stdout


def sdist(name: str, real: Real, folder: Path) -> Path:
    """NAME's sdist, downloaded from the index that pip uses, and checked against its sha256."""
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                ":all:", "--dest", str(folder), f"{name}=={real.version}"]  # fmt: skip
    got = subprocess.run(download, capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr
    [path] = folder.glob("*.tar.gz")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == real.sha256, f"{path} changed"
    return path


@pytest.fixture(scope="module", params=list(PROJECTS))
def adopted(request, developer, tmp_path_factory) -> tuple[str, Path, subprocess.CompletedProcess]:
    """A real project, adopted and released by the developer: its name, folder, release."""
    name, real = request.param, PROJECTS[request.param]
    archive = sdist(name, real, tmp_path_factory.mktemp(f"{name}-sdist"))
    place = developer.home / "adopted"
    shutil.rmtree(place / name, ignore_errors=True)
    place.mkdir(exist_ok=True)
    with tarfile.open(archive) as unpacked:
        top = unpacked.getnames()[0].split("/")[0]
        unpacked.extractall(place, filter="data")
    folder = (place / top).rename(place / name)
    (folder / "invoke.yaml").write_text(real.settings)
    commit(folder, f"{name} {real.version}, as its sdist holds it")
    start = time.monotonic()
    adopting = inv("adopt", str(folder))
    real.figures["adopt"] = time.monotonic() - start
    assert adopting.returncode == 0, adopting.stdout[-3000:] + adopting.stderr[-3000:]
    commit(folder, "adopt shipyard")  # as `inv adopt` says to, last
    subprocess.run(["chown", "-R", f"{developer.name}:", str(place)], check=True)
    # The bases are shared: this project's bootstrapped base, under the project's own name.
    base = bootstrap.base(context())
    project = re.sub(r"^my-project-base:", f"{name}-base:", base)
    if project != base:
        docker("tag", base, project)
    start = time.monotonic()
    released = developer.run("inv", "release", cwd=folder)
    real.figures["release"] = time.monotonic() - start
    yield name, folder, released
    developer.run("inv", "clean", cwd=folder, timeout=600)
    docker("image", "rm", project, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_real_project_adopts_the_collection_and_releases(adopted):
    """`inv release` is green: the project's own suite passes in the image's test stage (with
    only what its settings deselect), every dependency imports hardened in the runtime, its
    SBOM leaves no ELF file unattributed; and its script answers --help in the image, run
    read-only, with no capability, no network, as a uid that the image does not know."""
    name, folder, released = adopted
    said = released.stdout + released.stderr
    assert released.returncode == 0, said[-4000:]
    real = PROJECTS[name]
    version = real.version
    assert f"released {name}:{version}" in released.stdout
    [summary] = re.findall(r"^#\d+ [\d.]+ =+ (\d+ passed.*) in [\d.]+s =+$", said, re.MULTILINE)
    real.figures["tests in the image"] = summary
    assert " failed" not in summary and " error" not in summary
    assert re.search(r"^SBOM: .*, 0 ELF files unattributed", said, re.MULTILINE)
    assert re.search(r"^import check of .*: (\d+) of \1 modules import, hardened", said, re.M)
    hardened = [*imports.HARDENED, "--user", "4242:4242"]
    answered = docker("run", "--rm", *hardened, f"{name}:{version}", "--help", check=False)
    assert answered.returncode == 0, answered.stdout[-2000:] + answered.stderr[-2000:]
    assert answered.stdout.strip()
    size = docker("image", "inspect", "--format", "{{.Size}}", f"{name}:{version}").stdout
    real.figures["size"] = f"{int(size) / 1e6:.0f} MB"
    print(f"\n[adopt] {name} {version}: {real.figures}")
    assert (folder / "shipyard" / "adopted.json").is_file()
    assert not (folder / "shipyard" / "tests").exists()  # the collection's own tests stay here
