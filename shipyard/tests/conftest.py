"""Fixtures for the tests of the tooling: tasks.py, the Dockerfile, the image, the registry.

These tests run on the host only (the image's test stage leaves this folder out). Those
marked `docker` build and run images on a real Docker Engine; `inv test --all` runs them.
"""

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    CORPUS,
    CORPUS_SETTINGS,
    DOCKER,
    PODMAN,
    VERSION,
    commit,
    copy_project,
    docker,
    inv,
    need,
)

from shipyard.tooling import sandbox

# The modules whose engine tests hold Podman to the same promises as Docker (README, "On
# Podman"): the guarantees, the image, its SBOM, its publication, signed and checked by cosign.
# The others need a second dockerd or BuildKit's registry cache, or are Docker's alone for
# CI's time: the corpus, the other platform, the tampering cases of signing, security
# updates, the benchmark.
ON_PODMAN = {"test_guarantees.py", "test_image.py", "test_sbom.py", "test_publish.py"}


def pytest_configure(config: pytest.Config) -> None:
    """The collection's own markers: the app's configuration knows nothing of them."""
    for marker in (
        "docker: builds or runs images on a real Docker Engine (slow; `inv test --all`)",
        "slow: takes more than a few seconds, or the network (`inv test --all`)",
        "last: runs after every other test (it removes what the others build on)",
    ):
        config.addinivalue_line("markers", marker)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `last` run after all others: they remove what the others build on. On
    Podman, the engine tests of the other modules are skipped, and say why."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
    if PODMAN:
        skip = pytest.mark.skip(reason="run on Docker alone (README, Guarantees, On Podman)")
        for item in items:
            if item.get_closest_marker("docker") and item.path.name not in ON_PODMAN:
                item.add_marker(skip)


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
    """The corpus, added to a copy of the project as a user would: `inv poetry -- add`, then
    `inv export` and `inv build`, for each runtime. The copy has its own .venv."""
    folder = copy_project(tmp_path_factory.mktemp("corpus") / "project", share_venv=False)
    added = inv("poetry", "--", "add", "--lock", *map(shlex.quote, CORPUS), cwd=folder)
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
def fresh_engine() -> str:
    """A second Docker Engine, with no image and no build cache: its DOCKER_HOST."""
    need(shutil.which("dockerd") and os.geteuid() == 0, "a second engine needs root and dockerd")
    with sandbox.engine(DOCKER) as host:
        yield host


@pytest.fixture
def online_engine() -> str:
    """A second, empty Docker Engine whose builds reach the internet: its DOCKER_HOST."""
    need(shutil.which("dockerd") and os.geteuid() == 0, "a second engine needs root and dockerd")
    with sandbox.engine(DOCKER, internet=True) as host:
        yield host


@pytest.fixture
def registry(tmp_path) -> str:
    """A registry that anyone may push to, on loopback: its address."""
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    with sandbox.registry(tmp_path) as address:
        yield address
