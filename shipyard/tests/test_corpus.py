"""Native dependencies, as users add them: the corpus works in both runtimes, and stays small.

The corpus (conftest.py) is added to a copy of the project with poetry, exported and built,
as a user would. corpus/check.py exercises each dependency, and the standard library, inside
each image; psycopg2, built from its sdist, writes to and reads from a real PostgreSQL.
The test writes what it measured to docs/corpus.md.
"""

import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import uuid
from pathlib import Path

import pytest
from support import CORPUS_SETTINGS, ROLE, ROOT, VERSION, context, docker, free_port, inv, last_line

from shipyard.tooling import bootstrap, secrets

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CHECKS = Path(__file__).parent / "corpus"
# The plain two-stage build of the same requirements on the same base: the venv copied on.
PLAIN = "my-project-corpus-plain:latest"


@pytest.fixture(scope="module")
def postgres() -> str:
    """A real PostgreSQL server, Debian's, on a free 127.0.0.1 port: its connection string."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb or os.geteuid() != 0:
        reason = "PostgreSQL's server is not installed (apt-get install postgresql), or not root"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    bin_folder = Path(initdb[-1]).parent
    # Not under pytest's own folders, which the user postgres may not enter.
    data = Path(tempfile.mkdtemp(prefix="my-project-postgres-"))
    shutil.chown(data, "postgres")
    port = free_port()

    def as_postgres(*argv) -> None:
        command = ["runuser", "-u", "postgres", "--", *map(str, argv)]
        ran = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert ran.returncode == 0, ran.stdout + ran.stderr

    as_postgres(bin_folder / "initdb", "-D", data / "data", "-A", "trust")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data}"
    as_postgres(
        bin_folder / "pg_ctl", "-D", data / "data", "-o", options, "-l", data / "log", "-w", "start"
    )
    yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    as_postgres(bin_folder / "pg_ctl", "-D", data / "data", "-m", "immediate", "stop")
    shutil.rmtree(data)


def run_checks(ref: str, dsn: str) -> dict[str, dict]:
    """corpus/check.py in the image REF, as its unprivileged user: each check's result."""
    ran = docker(
        "run", "--rm", "--network", "host", "--env", f"PG_DSN={dsn}",
        "--volume", f"{CHECKS}:/corpus:ro", "--entrypoint", "/opt/venv/bin/python",
        ref, "/corpus/check.py",
    )  # fmt: skip
    return {result["check"]: result for result in map(json.loads, ran.stdout.splitlines())}


def size(ref: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout)


@pytest.fixture(scope="module")
def plain(corpus) -> str:
    """The plain two-stage build of the corpus (bench/baseline-two-stage.Dockerfile)."""
    c = context()
    argv = ["build", "--file", str(ROOT / "shipyard" / "bench" / "baseline-two-stage.Dockerfile")]
    argv += ["--build-arg", f"BASE_IMAGE={bootstrap.base(c)}"]
    argv += ["--build-arg", f"BUILD_PACKAGES={CORPUS_SETTINGS['INVOKE_DOCKER_BUILD_PACKAGES']}"]
    argv += ["--label", f"{ROLE}=bench", "--tag", PLAIN]
    with secrets.build_secrets(c) as flags:
        built = docker(*argv, *flags, str(corpus.folder), check=False, timeout=1800,
                       env={**os.environ, "DOCKER_BUILDKIT": "1"})  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    yield PLAIN
    docker("image", "rm", "--force", PLAIN, check=False)


def test_every_dependency_works_in_both_runtimes_at_three_quarters_of_a_plain_build(
    corpus, postgres, plain
):
    """Every check passes in the distroless and the slim runtime; the distroless image is at
    most 0.75 x the plain two-stage build. docs/corpus.md gets the figures."""
    results = {runtime: run_checks(image.ref, postgres) for runtime, image in corpus.images.items()}
    sizes = {runtime: size(image.ref) for runtime, image in corpus.images.items()}
    sizes["plain two-stage"] = size(plain)
    report(corpus.folder, results, sizes)
    failed = [
        f"{runtime}: {name}: {result['detail']}"
        for runtime, checks in results.items()
        for name, result in checks.items()
        if not result["ok"]
    ]
    assert not failed, "\n".join(failed)
    assert results["distroless"].keys() == results["slim"].keys()
    assert len(results["distroless"]) >= 25
    assert sizes["distroless"] <= 0.75 * sizes["plain two-stage"], sizes


def report(folder: Path, results: dict[str, dict], sizes: dict[str, int]) -> None:
    """docs/corpus.md: what was added, the sizes against the plain build, every check."""
    lock = tomllib.loads((folder / "poetry.lock").read_text())
    versions = {package["name"]: package["version"] for package in lock["package"]}
    dependencies = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["dependencies"]
    added = [name.split(" ")[0] for name in dependencies[2:]]
    plain = sizes["plain two-stage"]
    lines = [
        "# Native dependencies: the corpus",
        "",
        f"_Written by `tests/tooling/test_corpus.py` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; do not edit by hand._",
        "",
        "The corpus is added to a copy of the project as a user would: `poetry add`, "
        "`inv export`, `inv build`, once a runtime, with these settings:",
        "",
        *[f"- `{name}={value}`" for name, value in CORPUS_SETTINGS.items()],
        "",
        "Added: " + ", ".join(f"{name} {versions.get(name, '?')}" for name in added) + ".",
        "",
        "## Size",
        "",
        "The plain two-stage build is `bench/baseline-two-stage.Dockerfile`: the same "
        "requirements, built on the same base with the same build packages, and the venv "
        "copied onto the base. Sizes are in MB of 10⁶ bytes, as docker reports them.",
        "",
        "| image | size | against the plain build |",
        "| --- | ---: | ---: |",
        *[
            f"| {name} | {value / 1e6:.1f} MB | {value / plain:.2f} x |"
            for name, value in sizes.items()
        ],
        "",
        "## Checks",
        "",
        "Each runs inside the image, as its unprivileged user (`tests/tooling/corpus/check.py`).",
        "",
        "| check | what it exercises | distroless | slim |",
        "| --- | --- | --- | --- |",
    ]
    for name, result in results["distroless"].items():
        marks = [
            "pass" if results[runtime].get(name, {}).get("ok") else "FAIL"
            for runtime in ("distroless", "slim")
        ]
        lines.append(f"| {name} | {result['about']} | {marks[0]} | {marks[1]} |")
    passed = {runtime: sum(r["ok"] for r in checks.values()) for runtime, checks in results.items()}
    lines += ["", ", ".join(f"{runtime}: {n} of {len(results[runtime])} passed"
                            for runtime, n in passed.items()) + ".", ""]  # fmt: skip
    (ROOT / "docs" / "corpus.md").write_text("\n".join(lines))


def test_an_sdist_without_its_build_packages_is_one_line_naming_the_setting(corpus):
    """psycopg2 and mysqlclient cannot build without their headers: the build ends in one line
    that names them and docker.build_packages, and the image's tag keeps what it held."""
    name = f"my-project-corpus-unbuilt-{os.getpid()}"
    env = {**CORPUS_SETTINGS, "INVOKE_DOCKER_BUILD_PACKAGES": "", "INVOKE_DOCKER_IMAGE": name}
    failed = inv("build", cwd=corpus.folder, env=env)
    assert failed.returncode != 0
    line = last_line(failed)
    assert line.startswith("error: ") and "has no wheel for this platform" in line, line
    assert re.search(r"(psycopg2|mysqlclient)", line), line
    assert "docker.build_packages (INVOKE_DOCKER_BUILD_PACKAGES)" in line
    assert line.endswith(f"({name}:{VERSION} still holds what it held before.)")
    # The sdist's own build may print a traceback in the build's log, where each line starts
    # with its step's number ("#12 8.6 Traceback"); the tasks print none of their own.
    assert not re.search(r"^Traceback", failed.stdout + failed.stderr, re.MULTILINE)


def test_a_rebuild_takes_the_wheels_it_built_from_pip_cache(corpus):
    """When pip runs again (here, because pip-install changed), the wheels it built from the
    sdists come from its cache: nothing is compiled twice."""
    name = f"my-project-corpus-rebuilt-{os.getpid()}"
    env = {**CORPUS_SETTINGS, "INVOKE_DOCKER_IMAGE": name}
    script = corpus.folder / "shipyard" / "docker" / "pip-install"
    original = script.read_text()
    # A change never made before, so that the step that runs pip runs, whatever is cached.
    script.write_text(original + f"# {uuid.uuid4()}\n")
    try:
        rebuilt = inv("build", cwd=corpus.folder, env=env)
    finally:
        script.write_text(original)
        docker("image", "rm", "--force", f"{name}:{VERSION}", f"{name}:latest", check=False)
    log = rebuilt.stdout + rebuilt.stderr
    assert rebuilt.returncode == 0, log[-3000:]
    for sdist in ("psycopg2", "mysqlclient"):
        assert re.search(rf"Using cached {sdist}-[\w.-]+\.whl", log), log[-3000:]
    assert "Building wheel for" not in log
