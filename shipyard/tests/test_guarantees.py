"""The project's guarantees, each a test; README.md lists them under "Guarantees".

Most run against the real engine. A guarantee about a missing engine needs none.
"""

import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import (
    DOCKER,
    PODMAN,
    ROLE,
    ROOT,
    VERSION,
    context,
    docker,
    image_id,
    inv,
    last_line,
    project_things,
    pypi_simple_url,
    structure_test,
)

from shipyard.tooling import bootstrap
from shipyard.tooling.project import DOCKERFILE


def test_lint_passes_and_every_ignored_rule_says_why():
    """1. hadolint (at the warning threshold) and ruff pass; each ignored rule has a reason."""
    linted = inv("lint")
    assert linted.returncode == 0, linted.stdout + linted.stderr
    dockerfiles = [DOCKERFILE, *(DOCKERFILE.parent / "bench").glob("*.Dockerfile")]
    for line in (line for path in dockerfiles for line in path.read_text().splitlines()):
        if "hadolint ignore=" in line:
            assert re.search(r"hadolint ignore=\S+ # \w.{10,}", line), f"no reason: {line}"


@pytest.mark.docker
@pytest.mark.skipif(PODMAN, reason="container-structure-test speaks to a Docker socket alone")
def test_the_image_has_the_promised_structure(image):
    """2. container-structure-test: user, entrypoint, labels, commands, and what is absent."""
    checked = structure_test(image.ref, image.env["INVOKE_DOCKER_RUNTIME"])
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert "Failures:    0" in checked.stdout


@pytest.mark.docker
def test_no_secret_reaches_any_layer_the_config_or_the_history(project, tmp_path, distroless):
    """3. A CA bundle and a mirror URL with a random marker leave no copy in the image.

    The build runs without cache, and yet makes the very layers of the image built with it:
    nothing of the secrets, or of the build's time, is in them.
    """
    marker = f"marker-{uuid.uuid4().hex}"
    bundle = tmp_path / "ca.pem"
    # Text outside the PEM blocks is ignored, so the bundle still verifies this machine's CA.
    bundle.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text() + f"\n# {marker}\n")
    index = urllib.parse.urlsplit(pypi_simple_url())  # pip's own default, read at run time
    mirror = index._replace(netloc=f"{marker}:{marker}@{index.netloc}").geturl()
    name = f"my-project-secrets-{os.getpid()}"
    env = {
        "INVOKE_DOCKER_IMAGE": name,
        "INVOKE_PYPI_CERT": str(bundle),
        "INVOKE_PYPI_MIRROR": mirror,
    }
    try:
        # No cache: pip must really run with both secrets for the test to mean anything.
        built = inv("build", "--no-cache", cwd=project, env=env)
        assert built.returncode == 0, built.stderr[-3000:]
        # pip went through the marked mirror (it shows the user, never the password)...
        said = built.stdout + built.stderr  # Podman's build says it on stdout
        assert f"Looking in indexes: {index.scheme}://{marker}:****@" in said
        # ...and not one copy of the marker is in what the build left.
        ref = f"{name}:{VERSION}"
        archive = tmp_path / "image.tar"
        docker("save", "--output", str(archive), ref)
        with tarfile.open(archive) as saved:
            for member in saved.getmembers():
                if member.isfile():
                    content = saved.extractfile(member).read()
                    if member.name.endswith("layer.tar"):
                        _assert_no_marker_in_layer(content, marker, member.name)
                    assert marker.encode() not in content, member.name
        assert _layers(ref) == _layers(distroless.ref)
        history = docker("history", "--no-trunc", ref).stdout
        config = docker("image", "inspect", ref).stdout
        assert history and config
        assert marker not in history + config
        assert mirror not in history + config
    finally:
        docker("image", "rm", "--force", f"{name}:{VERSION}", f"{name}:latest", check=False)


def _layers(ref: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).stdout)


def _assert_no_marker_in_layer(layer: bytes, marker: str, name: str) -> None:
    """Every file of a layer, read out of its tar, holds no copy of MARKER."""
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        for member in files.getmembers():
            if member.isfile():
                assert marker.encode() not in files.extractfile(member).read(), (
                    f"{marker} in {member.name} of {name}"
                )


def _tamper(requirements: Path, distribution: str) -> None:
    """Change the last hex digit of every hash that REQUIREMENTS lists for DISTRIBUTION."""
    lines, inside = [], False
    for line in requirements.read_text().splitlines(keepends=True):
        if not line.startswith(" "):
            inside = line.startswith(f"{distribution}==")
        elif inside:
            line = re.sub(r"([0-9a-f])( \\)?$", lambda m: "0f"[m[1] == "0"] + (m[2] or ""), line)
        lines.append(line)
    requirements.write_text("".join(lines))


@pytest.fixture
def kept(distroless):
    """The runtime image under a name of the test's own: what a failed build must not touch."""
    name = f"my-project-kept-{os.getpid()}"
    docker("tag", distroless.ref, f"{name}:{VERSION}")
    yield name
    docker("image", "rm", f"{name}:{VERSION}", check=False)


def _still_runs(name: str, before: str) -> bool:
    ref = f"{name}:{VERSION}"
    greeted = docker("run", "--rm", ref, "say-hello", "--name", "alice").stdout
    return image_id(ref) == before and greeted == "Hello alice!\n"


@pytest.mark.docker
def test_an_altered_hash_fails_the_build_and_keeps_the_image(kept, project):
    """4. pip's hash check stops the build; the tag still holds the previous, working image."""
    before = image_id(f"{kept}:{VERSION}")
    _tamper(project / "requirements.txt", "termcolor")
    built = inv("build", cwd=project, env={"INVOKE_DOCKER_IMAGE": kept})
    assert built.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in built.stdout + built.stderr
    assert last_line(built).startswith("error: the build failed")
    assert _still_runs(kept, before)


@pytest.mark.parametrize(
    "task", ["base", "build", "run", "explore", "audit", "clean", "release", "push"]
)
def test_no_daemon_is_one_clear_line_within_5_s(task):
    """5. With DOCKER_HOST at a socket that does not exist, each task fails fast and clearly.
    Podman has no daemon: its like is a store that cannot be made."""
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock", "INVOKE_REGISTRY_URL": "127.0.0.1:9"}
    if PODMAN:
        store = ["--root", "/proc/none/storage", "--runroot", "/proc/none/run"]
        env["INVOKE_DOCKER_COMMAND"] = shlex.join([*DOCKER, *store])
    start = time.monotonic()
    failed = inv(task, env=env, timeout=60)
    elapsed = time.monotonic() - start
    assert failed.returncode != 0
    assert elapsed < 5, f"{task} took {elapsed:.1f} s"
    if PODMAN:
        assert last_line(failed).startswith("error: podman cannot run containers here (")
    elif shutil.which(DOCKER[0]):
        assert last_line(failed).startswith("error: no Docker Engine answers (")
        assert "DOCKER_HOST" in last_line(failed)
    else:  # no docker CLI at all: that is the line
        assert last_line(failed).startswith(f"error: there is no docker CLI `{DOCKER[0]}` here.")
    assert "Traceback" not in failed.stdout + failed.stderr


@pytest.mark.docker
def test_run_before_any_build_says_to_build_and_pulls_nothing():
    """6. No image yet: `inv run` says to build first, and never asks a registry for one."""
    failed = inv("run", env={"INVOKE_DOCKER_IMAGE": "my-project-never-built"})
    assert failed.returncode == 1
    assert last_line(failed) == (
        f"error: there is no image my-project-never-built:{VERSION} here yet. "
        "Build it first: `inv build`."
    )
    assert "pull" not in (failed.stdout + failed.stderr).lower()


@pytest.mark.docker
def test_a_stranger_named_like_the_dev_container_is_left_alone(distroless):
    """7. A container the project did not make, under the dev container's name: clear error."""
    created = docker("create", "--name", "my-project-dev", distroless.ref, "say-hello")
    stranger = created.stdout.strip()
    try:
        failed = inv("explore", "--cmd", "true")
        assert failed.returncode == 1
        assert "my-project-dev exists, and my-project did not make it" in last_line(failed)
        state = json.loads(docker("container", "inspect", "my-project-dev").stdout)[0]
        assert state["Id"] == stranger
        assert state["State"]["Status"] == "created"  # not started, not removed
    finally:
        docker("container", "rm", "--force", stranger, check=False)


@pytest.mark.docker
def test_a_killed_build_leaves_the_previous_image_runnable(kept, project):
    """9. A build killed halfway (all of its processes, at once) leaves the tag as it was."""
    before = image_id(f"{kept}:{VERSION}")
    building = subprocess.Popen(
        [sys.executable, "-m", "invoke", "build", "--no-cache"],
        cwd=project,
        env={**os.environ, "INVOKE_DOCKER_IMAGE": kept},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _read_until(building, b"pip-install --for /target /tmp/requirements.txt")
    os.killpg(building.pid, signal.SIGKILL)
    building.wait()
    assert _still_runs(kept, before)


def _read_until(process: subprocess.Popen, text: bytes, timeout: float = 300) -> None:
    seen, deadline = b"", time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, seen[-2000:]
        chunk = process.stdout.read1(4096)
        assert chunk, seen[-2000:]
        seen += chunk


HOSTILE = [
    ("say-hello --name '$(touch {canary})'", "Hello $(touch {canary})!"),
    ("say-hello --name '`touch {canary}`'", "Hello `touch {canary}`!"),
    ("say-hello --name 'a; touch {canary}'", "Hello a; touch {canary}!"),
    ("say-hello --name 'a | touch {canary}'", "Hello a | touch {canary}!"),
    ("say-hello --name 'Zoë 李雷 🐍'", "Hello Zoë 李雷 🐍!"),
]


@pytest.mark.docker
@pytest.mark.parametrize(("cmd", "greeting"), HOSTILE)
def test_hostile_cmd_reaches_the_app_as_text(image, tmp_path, cmd, greeting):
    """10. Shell syntax in --cmd is text to the app: nothing runs on the host or in a shell."""
    canary = tmp_path / "canary"
    ran = inv("run", "--cmd", cmd.format(canary=canary), env=image.env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == greeting.format(canary=canary)
    assert not canary.exists()


def test_unbalanced_quotes_in_cmd_are_one_clear_line():
    """10. Unbalanced quotes are refused before anything runs."""
    failed = inv("run", "--cmd", "say-hello --name 'alice")
    assert failed.returncode == 1
    assert last_line(failed) == (
        'error: cannot split --cmd "say-hello --name \'alice": No closing quotation. '
        "Balance its quotes."
    )


@pytest.mark.docker
def test_sixteen_runs_at_once_each_get_their_own_output(distroless):
    """11. 16 concurrent `inv run`: all succeed, each with its own greeting, none left over."""
    names = [f"runner-{n}" for n in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        runs = list(pool.map(lambda name: inv("run", "--cmd", f"say-hello --name {name}"), names))
    for name, ran in zip(names, runs, strict=True):
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines()[-1] == f"Hello {name}!"
    left = docker("container", "ls", "--all", "--quiet", "--filter", f"label={ROLE}=run")
    assert left.stdout.strip() == ""


@pytest.mark.docker
def test_two_builds_at_once_both_end_well(distroless):
    """11. Two concurrent `inv build`: each ends with a working image, or a clear error."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        builds = list(pool.map(lambda _: inv("build"), range(2)))
    for built in builds:
        assert built.returncode == 0 or last_line(built).startswith("error: "), built.stderr
    assert any(built.returncode == 0 for built in builds)
    greeted = docker("run", "--rm", distroless.ref, "say-hello", "--name", "alice")
    assert greeted.stdout == "Hello alice!\n"


@pytest.mark.docker
def test_exit_codes_reach_the_caller_unchanged(distroless):
    """12. The app's exit code, a usage error's included, is `inv run`'s exit code."""
    assert inv("run", "--cmd", "say-hello").returncode == 2
    assert inv("run", "--cmd", "no-such-command").returncode == 2
    assert inv("run", "--cmd", "say-hello --name x").returncode == 0


def _built_on(base: str, tag: str) -> str:
    """Build TAG FROM BASE, as a user builds on ours: it inherits every label of BASE."""
    built = docker("build", "--tag", tag, "-", input=f"FROM {base}\nLABEL someone.tool=1\n",
                   env={**os.environ, "DOCKER_BUILDKIT": "1"})  # fmt: skip
    assert built.returncode == 0, built.stderr
    return image_id(tag)


@pytest.mark.docker
@pytest.mark.last
def test_clean_with_every_flag_spares_what_is_not_ours(project, distroless, tmp_path):
    """8. An unrelated image, container and volume survive, and so do images built FROM ours
    (which inherit our labels) with their containers; everything of the project goes."""
    tag = f"unrelated-{os.getpid()}"
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    docker("import", str(tmp_path / "empty.tar"), f"{tag}:1")
    base = bootstrap.base(context())
    theirs = {
        f"{tag}:1": image_id(f"{tag}:1"),
        f"{tag}-tool:1": _built_on(f"my-project:{VERSION}", f"{tag}-tool:1"),
        f"{tag}-base-tool:1": _built_on(base, f"{tag}-base-tool:1"),
    }
    containers = [
        docker("create", "--name", f"{name.partition(':')[0]}-c", name, "/none").stdout.strip()
        for name in theirs
    ]
    volume = docker("volume", "create", tag).stdout.strip()
    # Something of each kind the project makes: a stopped run container, a dev container, and
    # what a killed base upgrade leaves (a stopped one is spared without --base).
    docker("create", "--label", f"{ROLE}=run", distroless.ref)
    upgrade = docker("create", "--name", f"my-project-base-upgrade-{os.getpid()}",
                     "--label", f"{ROLE}=upgrade", base).stdout.strip()  # fmt: skip
    docker("run", "--detach", "--name", "my-project-dev", "--label", f"{ROLE}=dev",
           base, "sleep", "infinity")  # fmt: skip
    (project / "htmlcov").mkdir()
    flags = ["--local", "--base", "--yes"]
    if os.environ.get("CI"):  # on a developer's machine, the engine's shared cache is left alone
        flags.append("--build-cache")
    try:
        cleaned = inv("clean", cwd=project)
        assert cleaned.returncode == 0, cleaned.stderr
        assert image_id(distroless.ref) is None
        assert image_id(base) is not None  # the base goes only with --base, and so does
        assert docker("container", "inspect", upgrade, check=False).returncode == 0  # its upgrade
        cleaned = inv("clean", *flags, cwd=project)
        assert cleaned.returncode == 0, cleaned.stderr
        assert project_things() == ([], [])
        assert not (project / "htmlcov").exists()
        assert not (project / ".venv").is_symlink()
        assert {name: image_id(name) for name in theirs} == theirs
        for container in containers:
            assert docker("container", "inspect", container, check=False).returncode == 0
        assert docker("volume", "inspect", volume, check=False).returncode == 0
        assert (ROOT / ".venv").is_dir()  # the copy's link went, not what it pointed to
    finally:
        docker("container", "rm", "--force", *containers, check=False)
        docker("volume", "rm", tag, check=False)
        docker("image", "rm", *theirs, check=False)
