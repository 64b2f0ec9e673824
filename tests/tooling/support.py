"""Helpers for the tooling tests: the docker CLI, `inv` in a fresh process, and waiting."""

import os
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = shlex.split(os.environ.get("INVOKE_DOCKER_COMMAND", "docker"))
ROLE = "my-project.role"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


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


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines() or [""]
    return lines[-1]


def image_id(ref: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return found.stdout.strip() or None


def project_things() -> tuple[list[str], list[str]]:
    """The IDs of every container and image that carries the project's label."""
    containers = docker("container", "ls", "--all", "--quiet", "--filter", f"label={ROLE}")
    images = docker("image", "ls", "--quiet", "--filter", f"label={ROLE}")
    return containers.stdout.split(), images.stdout.split()


def structure_test(ref: str, runtime: str) -> subprocess.CompletedProcess:
    """container-structure-test on REF: what every runtime promises, and the distroless extras."""
    configs = ["runtime.yaml", "distroless.yaml"] if runtime == "distroless" else ["runtime.yaml"]
    structure = Path(__file__).parent / "structure"
    flags = [flag for name in configs for flag in ("--config", str(structure / name))]
    tool = Path(sys.executable).parent / "container-structure-test"
    return subprocess.run([tool, "test", "--image", ref, *flags], capture_output=True, text=True)


def wait_until(condition, timeout: float = 30.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False
