"""Fixtures for the tests of the tooling: tasks.py, the Dockerfile, the image, the registry.

These tests run on the host only (the image's test stage leaves this folder out). Those
marked `docker` build and run images on a real Docker Engine; `inv test --all` runs them.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ROOT, VERSION, docker, inv


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
    copy = tmp_path / "project"
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
    (copy / ".venv").symlink_to(ROOT / ".venv")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*git, *command], cwd=copy, check=True, capture_output=True)
    return copy
