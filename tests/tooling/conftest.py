"""Fixtures for the tests of the tooling: tasks.py, the Dockerfile, the image, the registry.

These tests run on the host only (the image's test stage leaves this folder out). Those
marked `docker` build and run images on a real Docker Engine; `inv test --all` runs them.
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    CORPUS,
    CORPUS_SETTINGS,
    VERSION,
    commit,
    copy_project,
    docker,
    inv,
    pypi_simple_url,
    wait_until,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` run after all others: they remove what the others build on."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker Engine that answers. In CI, its absence fails the test rather than skip it."""
    answer = docker("version", "--format", "{{.Server.Version}}", check=False)
    if answer.returncode != 0:
        reason = f"no Docker Engine answers: {answer.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _engine_for_docker_tests(request) -> None:
    if request.node.get_closest_marker("docker"):
        request.getfixturevalue("engine")


@dataclass
class Image:
    """An image that `inv build` made, and the environment that makes the tasks use it."""

    ref: str
    env: dict

    def run(self, *args: str, entrypoint: str | None = None, check: bool = False):
        override = ["--entrypoint", entrypoint] if entrypoint else []
        return docker("run", "--rm", *override, self.ref, *args, check=check)


def _build(runtime: str) -> Image:
    env = {"INVOKE_DOCKER_RUNTIME": runtime}
    if runtime != "distroless":  # the default keeps the default name
        env["INVOKE_DOCKER_IMAGE"] = f"my-project-{runtime}"
    built = inv("build", env=env)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    name = env.get("INVOKE_DOCKER_IMAGE", "my-project")
    return Image(ref=f"{name}:{VERSION}", env=env)


@pytest.fixture(scope="session")
def distroless(engine) -> Image:
    """The default runtime image: the interpreter and the app on scratch."""
    return _build("distroless")


@pytest.fixture(scope="session", params=["distroless", "slim"])
def image(request, engine) -> Image:
    """Each runtime in turn: every container test holds for the small one and the slim one."""
    if request.param == "distroless":
        return request.getfixturevalue("distroless")
    return _build(request.param)


@pytest.fixture
def project(tmp_path) -> Path:
    """A committed copy of the project to change freely; it shares the real .venv."""
    return copy_project(tmp_path / "project")


@dataclass
class Corpus:
    """A copy of the project with the corpus added, and its images, built by `inv build`."""

    folder: Path
    images: dict[str, Image]  # by runtime: distroless, slim


@pytest.fixture(scope="session")
def corpus(engine, tmp_path_factory) -> Corpus:
    """The corpus, added to a copy of the project as a user would: `poetry add`, then
    `inv export` and `inv build`, for each runtime. The copy has its own .venv."""
    folder = copy_project(tmp_path_factory.mktemp("corpus") / "project", share_venv=False)
    assert inv("venv", cwd=folder).returncode == 0
    mirror = os.environ.get("INVOKE_PYPI_MIRROR") or pypi_simple_url()
    env = {**os.environ, "VIRTUAL_ENV": str(folder / ".venv"), "POETRY_PYPI_MIRROR_URL": mirror}
    added = subprocess.run(
        [folder / ".venv/poetry/bin/poetry", "add", "--lock", *CORPUS],
        cwd=folder, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert added.returncode == 0, added.stdout[-3000:] + added.stderr[-3000:]
    exported = inv("export", cwd=folder)
    assert exported.returncode == 0, exported.stderr[-3000:]
    commit(folder, "the corpus")
    images = {}
    for runtime in ("distroless", "slim"):
        name = f"my-project-corpus-{runtime}"
        env = {**CORPUS_SETTINGS, "INVOKE_DOCKER_RUNTIME": runtime, "INVOKE_DOCKER_IMAGE": name}
        built = inv("build", cwd=folder, env=env)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        images[runtime] = Image(ref=f"{name}:{VERSION}", env=env)
    yield Corpus(folder, images)
    for image in images.values():
        docker(
            "image", "rm", "--force", image.ref, image.ref.replace(VERSION, "latest"), check=False
        )


@pytest.fixture
def fresh_engine(tmp_path) -> str:
    """A second Docker Engine, with no image and no build cache: its DOCKER_HOST.

    It has a bridge of its own (mp-fresh0): a second engine with none would delete the first
    one's docker0. Its containers reach the host, not the internet (no NAT).
    """
    dockerd = shutil.which("dockerd")
    if not dockerd or os.geteuid() != 0:
        reason = "a second Docker Engine needs root and dockerd"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    bridge = "mp-fresh0"
    for command in (
        ["link", "add", bridge, "type", "bridge"],
        ["addr", "add", "10.213.0.1/24", "dev", bridge],
        ["link", "set", bridge, "up"],
    ):
        subprocess.run(["ip", *command], check=True, capture_output=True)  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="my-project-engine-"))  # short: sockets have a limit
    host = f"unix://{folder}/docker.sock"
    log = (tmp_path / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        [dockerd, "--data-root", folder / "data", "--exec-root", folder / "exec",
         "--pidfile", folder / "pid", "--host", host, "--bridge", bridge,
         "--iptables=false", "--ip-masq=false"],
        stdout=log, stderr=log,
    )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": host}
    answer = lambda: docker("version", check=False, env=env).returncode == 0  # noqa: E731
    try:
        assert wait_until(answer, timeout=60), (tmp_path / "dockerd.log").read_text()[-3000:]
        yield host
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)
        subprocess.run(["umount", "--recursive", "--lazy", folder / "data"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
