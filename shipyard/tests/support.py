"""Helpers for the tooling tests: the docker CLI, `inv` in a fresh process, and waiting."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import invoke
import pytest

from shipyard.tooling import engine, podman
from shipyard.tooling.sandbox import free_port, wait_until  # noqa: F401 # the tests' too

ROOT = Path(__file__).resolve().parents[2]  # the project: the collection is its shipyard/
DOCKER = shlex.split(os.environ.get("INVOKE_DOCKER_COMMAND", "docker"))
PODMAN = Path(DOCKER[0]).name == "podman"  # the engine under test is rootless Podman
ROLE = "my-project.role"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# The corpus: native dependencies that real apps carry, each for a class of failure.
CORPUS = [
    "numpy",  # OpenBLAS, bundled by auditwheel and rewritten by patchelf: strip can break it
    "pandas",  # C extensions on numpy; time zones
    "scipy",  # Fortran, with the libgfortran and OpenBLAS its wheel bundles
    "lxml",  # libxml2 and libxslt, linked statically; legacy encodings
    "cryptography",  # Rust, and an OpenSSL of its own
    "pillow",  # a dozen codec libraries in pillow.libs
    "shapely",  # GEOS, in C++
    "orjson",  # Rust
    "pydantic",  # Rust, through PyO3
    "pyyaml",  # libyaml
    "msgpack",  # Cython
    "pyzmq",  # libzmq, found through RPATH $ORIGIN
    "argon2-cffi",  # cffi and libffi
    "psycopg2",  # an sdist only: built against libpq-dev; libpq5 and its closure at run time
    "mysqlclient",  # an sdist only: libmariadb, which loads plugins by name
    "python-magic",  # opens libmagic by name, through ctypes.util.find_library
    "lightgbm",  # links the system's libgomp.so.1, which its wheel does not bundle
    "pyodbc",  # links the system's unixODBC, libodbc.so.2, which its wheel does not bundle
]
# What the corpus needs of the two settings that native dependencies may ask for.
CORPUS_SETTINGS = {
    "INVOKE_DOCKER_BUILD_PACKAGES": "libpq-dev default-libmysqlclient-dev pkg-config",
    "INVOKE_DOCKER_RUNTIME_PACKAGES": "libmagic1",
}


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the configured docker CLI directly, as a check from outside the tasks."""
    kwargs.setdefault("timeout", 600)
    return subprocess.run([*DOCKER, *args], capture_output=True, text=True, check=check, **kwargs)


def inv(*args: str, cwd: Path = ROOT, env: dict | None = None, **kwargs):
    """Run `inv ARGS` in a fresh process, as a user would."""
    kwargs.setdefault("timeout", 1800)
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        **kwargs,
    )


def copy_project(copy: Path, share_venv: bool = True) -> Path:
    """A committed copy of the project at COPY: the files git knows of, and (SHARE_VENV) a link
    to the real .venv; else the copy makes its own .venv, as a fresh clone does."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    if share_venv:
        (copy / ".venv").symlink_to(ROOT / ".venv")
    commit(copy, "copy")
    return copy


def commit(folder: Path, message: str) -> None:
    """Commit everything in FOLDER, a git repository made if there is none."""
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    commands = [["add", "-A"], ["commit", "-q", "--allow-empty", "-m", message]]
    if not (folder / ".git").exists():
        commands.insert(0, ["init", "-q"])
    for command in commands:
        subprocess.run([*git, *command], cwd=folder, check=True, capture_output=True)


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines() or [""]
    return lines[-1]


def image_id(ref: str) -> str | None:
    """REF's ID, as Docker writes it: sha256:HEX (Podman's inspect leaves out sha256:). On
    Podman, REF means what it means to Docker (tooling/podman.py)."""
    for name in podman.meant(ref) if PODMAN else [ref]:
        found = docker("image", "inspect", "--format", "{{.Id}}", name, check=False).stdout
        if found.strip():
            return f"sha256:{found.strip().removeprefix('sha256:')}"
    return None


def project_things() -> tuple[list[str], list[str]]:
    """The project's leftover containers (`run`'s, a base upgrade's, the dev container), and its
    images: those in the repositories that the tasks tag, and every image that the tasks
    recorded building."""
    containers = [
        docker("container", "ls", "--all", "--quiet", "--filter", f"label={ROLE}={role}").stdout
        for role in ("run", "upgrade", "dev")
    ]
    repositories = ["my-project", "my-project-base", "my-project-bench", "my-project-verify"]
    images = [docker("image", "ls", "--quiet", podman.meant(name)[0] if PODMAN else name).stdout
              for name in repositories]  # fmt: skip # on Podman, not any registry's of the name
    ledger = ROOT / ".venv" / "stamps" / "images"
    recorded = ledger.read_text().split()[::2] if ledger.is_file() else []
    images += [found for found in recorded if image_id(found)]
    return " ".join(containers).split(), " ".join(images).split()


def structure_test(
    ref: str, runtime: str, platform: str = "linux/amd64"
) -> subprocess.CompletedProcess:
    """container-structure-test on REF: what every runtime promises, and the distroless extras."""
    configs = ["runtime.yaml", "distroless.yaml"] if runtime == "distroless" else ["runtime.yaml"]
    structure = Path(__file__).parent / "structure"
    flags = [flag for name in configs for flag in ("--config", str(structure / name))]
    tool = Path(sys.executable).parent / "container-structure-test"
    argv = [tool, "test", "--image", ref, "--platform", platform, *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


def context() -> invoke.Context:
    """An invoke Context with the project's configuration, INVOKE_* variables included, as
    `inv` makes it: for the tooling's own mechanics (tooling/) in a test."""
    from shipyard import tasks  # here: importing it moves the process to the project root

    config = invoke.Config(project_location=str(ROOT))
    config.load_collection(tasks.ns.configuration())
    config.load_shell_env()
    engine.forget()  # the tests' other processes change the engine's images
    return invoke.Context(config)


def pypi_simple_url() -> str:
    """PyPI's simple index, as pip names it: read at run time, never written down."""
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def elf_files(ref: str) -> set[str]:
    """The paths of the regular ELF files in the image REF, read from its exported filesystem."""
    container = docker("create", ref).stdout.strip()
    try:
        with (
            subprocess.Popen([*DOCKER, "export", container], stdout=subprocess.PIPE) as export,
            tarfile.open(fileobj=export.stdout, mode="r|") as layers,
        ):
            return {
                "/" + member.name.removeprefix("./")
                for member in layers
                if member.isfile() and layers.extractfile(member).read(4) == b"\x7fELF"
            }
    finally:
        docker("rm", container, check=False)


def sbom_of(ref: str, project: Path = ROOT) -> dict:
    """The SBOM of image REF (IMAGE:TAG), in the dist/ of the PROJECT that built it."""
    return json.loads((project / "dist" / f"{ref.replace(':', '-')}.cdx.json").read_text())


def owners(sbom: dict) -> dict[str, str]:
    """Each file that SBOM's components (not its root, the image itself) name: their name."""
    return {
        occurrence["location"]: component["name"]
        for component in sbom["components"]
        for occurrence in component.get("evidence", {}).get("occurrences", [])
    }


def need(condition: object, reason: str) -> None:
    """Skip the test where CONDITION fails, for REASON; in CI, where all must be, fail it."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def locked(folder: Path) -> str:
    """The configuration that makes a registry want a login: alice's, whose password, "secret",
    is hashed with bcrypt in htpasswd (made once with crypt.crypt(..., METHOD_BLOWFISH): the
    crypt module is gone from Python 3.13)."""
    (folder / "htpasswd").write_text(
        "alice:$2b$12$a7jM64jcS6fYdbZsSLpTLuGvVLGQ.ih1oYCmnkHGGUb8He3epVcou\n"
    )
    return f"auth: {{htpasswd: {{realm: test, path: {folder / 'htpasswd'}}}}}\n"
