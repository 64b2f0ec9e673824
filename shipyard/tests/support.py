"""Helpers for the tooling tests: the docker CLI, `inv` in a fresh process, and waiting."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
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
    config.run.in_stream = False  # a command it runs reads no stdin: pytest's is captured
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


@dataclass
class Ran:
    """One command that ran, with what it said."""

    command: str
    returncode: int
    stdout: str
    stderr: str


def readme_blocks(heading: str) -> list[list[str]]:
    """The bash blocks of README.md's section HEADING, each as its commands: the lines of a
    command that goes on (a line that ends in a backslash) joined to it, as bash reads them."""
    blocks, section, block = [], False, None
    for line in (ROOT / "README.md").read_text().splitlines():
        if block is not None:  # in a block
            if line == "```":
                blocks.append(block)
                block = None
            elif block and block[-1].endswith("\\"):
                block[-1] += "\n" + line
            else:
                block.append(line)
        elif line.startswith("#"):
            section = line.lstrip("#").strip() == heading
        elif section and line == "```bash":
            block = []
    return blocks


def run_commands(commands: list[str], cwd: Path, env: dict, replace: dict) -> list[Ran]:
    """Run COMMANDS in one bash, in turn, each one whatever the last one's exit code, with each
    key of REPLACE replaced by its value: what each one said. `inv` there is this Python's."""
    with tempfile.TemporaryDirectory(prefix="readme-") as folder:
        shim = Path(folder) / "bin" / "inv"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m invoke "$@"\n')
        shim.chmod(0o755)
        script = []
        for number, command in enumerate(commands):
            for old, new in replace.items():
                command = command.replace(old, new)
            out = f"{folder}/{number}"
            script.append(f"{{ {command}\n}} >{out}.out 2>{out}.err </dev/null; echo $? >{out}.rc")
        path = f"{shim.parent}:{env.get('PATH', os.environ['PATH'])}"
        subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, timeout=3600,
                       env={**os.environ, **env, "PATH": path}, check=True)  # fmt: skip
        said = Path(folder)
        return [Ran(command, int((said / f"{number}.rc").read_text()),
                    (said / f"{number}.out").read_text(), (said / f"{number}.err").read_text())
                for number, command in enumerate(commands)]  # fmt: skip


def failures(ran: list[Ran]) -> str:
    """What each command that failed said, for an assertion's message; "" where none did."""
    return "\n".join(f"$ {one.command}\n-> {one.returncode}: {one.stdout[-2000:]}"
                     f"{one.stderr[-2000:]}" for one in ran if one.returncode)  # fmt: skip


# What the README's commands name the image by, and what is put in its place.
README_IMAGE = "REGISTRY/team/my-project:0.1.0"
# A password for the tests' keys, and a committer for the README's `git commit`.
SIGNING_ENV = {"COSIGN_PASSWORD": "test-password", "GIT_AUTHOR_NAME": "test",
               "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_NAME": "test",
               "GIT_COMMITTER_EMAIL": "test@example.invalid"}  # fmt: skip


def cosign_checks(project: Path, image: str, env: dict | None = None, **replace: str) -> dict:
    """The README's cosign commands ("Verifying a release", its second block), run in PROJECT
    on IMAGE (by tag, or REPOSITORY@DIGEST) in the README's image's place: what each said, by
    its first words and type (`verify`, `verify-attestation cyclonedx`, ...`policy`, ...)."""
    [_, commands] = readme_blocks("Verifying a release")
    ran = run_commands(commands, project, env or {}, {README_IMAGE: image, **replace})
    named = {}
    for one in ran:
        words = one.command.split()
        if words[0] == "cosign":
            kind = words[words.index("--type") + 1] if "--type" in words else ""
            name = " ".join([words[1], kind, "policy" if "--policy" in words else ""])
            named[" ".join(name.split())] = one
    return named


def skopeo(*args: str) -> subprocess.CompletedProcess:
    """skopeo ARGS: a reader of registries other than cosign and the tasks. It has no
    credentials, in a file of its own: where XDG_RUNTIME_DIR is unset (a user that runuser
    started), skopeo would look for them in root's /run/containers, and stop there."""
    with tempfile.TemporaryDirectory(prefix="skopeo-") as folder:
        auth = Path(folder) / "auth.json"
        auth.write_text('{"auths": {}}')
        env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth)}
        return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True,
                              timeout=120, env=env)  # fmt: skip


def tags(repository: str) -> list[str]:
    """The tags of REPOSITORY, as skopeo lists them."""
    listed = skopeo("list-tags", "--tls-verify=false", f"docker://{repository}")
    return json.loads(listed.stdout)["Tags"]


def assert_evidence(project: Path, repository: str, images: dict[str, Path], listed: str = "",
                    env: dict | None = None, **replace: str) -> None:  # fmt: skip
    """Every cosign command of the README (with REPLACE's replacements) passes on each image of
    IMAGES (a digest, with the SBOM that dist/ holds of it) and `cosign verify` on the list
    LISTED (a digest), where there is one; cosign gives each SBOM back as dist/ holds it; and
    skopeo lists the signatures and attestations beside them."""
    if listed:
        checked = cosign_checks(project, f"{repository}@{listed}", env, **replace)["verify"]
        assert checked.returncode == 0, failures([checked])
    for digest, written in images.items():
        checked = cosign_checks(project, f"{repository}@{digest}", env, **replace)
        failed = failures(list(checked.values()))
        assert not failed, failed
        assert len(checked) == 5, list(checked)
        assert json.loads(checked["download"].stdout) == json.loads(written.read_text())
    found = tags(repository)
    for digest in [*images, *filter(None, [listed])]:
        assert f"{digest.replace(':', '-')}.sig" in found, found
    assert all(f"{digest.replace(':', '-')}.att" in found for digest in images), found
