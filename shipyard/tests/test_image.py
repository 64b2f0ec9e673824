"""The container flow on a real Docker Engine: build, run, explore, the test stage, release.

Each test that takes the `image` fixture runs against both runtimes: the distroless one
(the default) and the slim one.
"""

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import pytest
from support import ROLE, ROOT, VERSION, docker, image_id, inv, last_line, wait_until

pytestmark = pytest.mark.docker


def test_run_greets_alice(image):
    ran = inv("run", "--cmd", "say-hello --name alice", env=image.env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == "Hello alice!"


def test_run_show_deps_prints_polars_and_its_result(image):
    ran = inv("run", "--cmd", "show-deps", env=image.env)
    assert ran.returncode == 0, ran.stderr
    assert "polars 2.1.0\n" in ran.stdout
    assert "  blue 6\n  red 9\n" in ran.stdout


def test_run_without_cmd_prints_usage(image):
    ran = inv("run", env=image.env)
    assert ran.returncode == 0
    assert "COMMAND is one of the following" in ran.stdout


def test_a_failing_command_passes_its_exit_code_on(image):
    """fire's usage error (2) reaches the caller of `inv run` unchanged."""
    ran = inv("run", "--cmd", "say-hello", env=image.env)
    assert ran.returncode == 2
    assert "The function received no value for the required argument: name" in ran.stderr
    assert last_line(ran) == f"{image.ref} exited with 2"


def test_the_user_is_not_root_and_there_is_no_pip(image):
    config = json.loads(docker("image", "inspect", image.ref).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    whoami = image.run("-c", "import os; print(os.getuid())", entrypoint="/opt/venv/bin/python")
    assert whoami.stdout == "10001\n"
    pip = image.run("-m", "pip", "--version", entrypoint="/opt/venv/bin/python")
    assert pip.returncode == 1
    assert "No module named pip" in pip.stderr


def test_any_uid_runs_it_as_openshift_runs_an_image(image):
    """A uid that the image does not know, on a read-only root with a tmpfs at /tmp, and no
    shell: the user's name, home and a cache directory work, and so does the app."""
    hardened = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--network", "none",
                "--user", "4242:4242"]  # fmt: skip
    code = ("import getpass, pathlib; home = pathlib.Path.home(); cache = home / '.cache' / 'x';"
            " cache.mkdir(parents=True); (cache / 'f').write_text('kept');"
            " print(getpass.getuser(), home, (cache / 'f').read_text())")  # fmt: skip
    ran = docker("run", "--rm", *hardened, "--entrypoint", "/opt/venv/bin/python", image.ref,
                 "-c", code, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "app /tmp kept\n"
    greeted = docker("run", "--rm", *hardened, image.ref, "say-hello", "--name", "alice")
    assert greeted.stdout == "Hello alice!\n"


def test_the_labels_say_what_was_built(image):
    labels = json.loads(docker("image", "inspect", image.ref).stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "my-project"
    assert labels["org.opencontainers.image.version"] == VERSION
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True)
    assert labels["org.opencontainers.image.revision"].startswith(revision.stdout.decode().strip())
    assert labels["org.opencontainers.image.created"][:2] == "20"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels[ROLE] == "runtime"
    # Nothing of this machine, such as where its SBOM lies (dist/): the ID follows the source.
    assert not [key for key, value in labels.items() if value.startswith(("dist/", "/"))]


def test_the_distroless_runtime_has_no_shell(distroless):
    ran = distroless.run("-c", "true", entrypoint="/bin/sh")
    assert ran.returncode != 0
    assert "no such file or directory" in ran.stderr


def test_a_second_build_changes_nothing(distroless):
    before = image_id(distroless.ref)
    again = inv("build")
    assert again.returncode == 0, again.stderr
    assert "unchanged: every layer was cached" in again.stdout
    assert image_id(distroless.ref) == before


def test_a_source_change_reuses_the_dependency_layer(distroless, project):
    """After an edit under my_project/, only the app's layer is new; no wheel is installed."""
    env = {"INVOKE_DOCKER_IMAGE": f"my-project-edit-{os.getpid()}"}
    ref = f"{env['INVOKE_DOCKER_IMAGE']}:{VERSION}"
    try:
        assert inv("build", cwd=project, env=env).returncode == 0
        before = json.loads(docker("image", "inspect", ref).stdout)[0]["RootFS"]["Layers"]
        hello = project / "my_project" / "hello.py"
        hello.write_text(hello.read_text().replace("Hello {name}!", "Hi {name}!"))
        rebuilt = inv("build", cwd=project, env=env)
        assert rebuilt.returncode == 0, rebuilt.stderr
        after = json.loads(docker("image", "inspect", ref).stdout)[0]["RootFS"]["Layers"]
        # Layers: the distroless tree, the dependencies, the app, then empty ones.
        assert after[:2] == before[:2], "the dependency layer was rebuilt"
        assert [layer for layer in after if layer not in before] == [after[2]]
        assert "pip-install --for /target /tmp/requirements.txt" in rebuilt.stderr + rebuilt.stdout
        assert not any(
            "pip-install --for /target /tmp/requirements.txt" in line and "CACHED" not in line
            for line in _step_results(rebuilt.stdout + rebuilt.stderr)
        )
        greeted = docker("run", "--rm", ref, "say-hello", "--name", "alice")
        assert greeted.stdout == "Hi alice!\n"
    finally:
        docker("image", "rm", "--force", ref, f"{env['INVOKE_DOCKER_IMAGE']}:latest", check=False)


def _step_results(log: str) -> list[str]:
    """Each BuildKit step's title with its outcome, from plain progress output."""
    titles, results = {}, []
    for line in log.splitlines():
        step, _, rest = line.partition(" ")
        if step.startswith("#") and rest.startswith("["):
            titles[step] = rest
        elif step in titles and rest.split(" ")[0] in {"CACHED", "DONE"}:
            results.append(f"{titles[step]} {rest}")
    return results


def test_the_test_stage_runs_the_suite_in_the_image(distroless):
    built = inv("build", "--test")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    # Cached or not, the image exists only if the suite passed inside it.
    assert image_id("my-project:test")
    log = docker("history", "--no-trunc", "my-project:test").stdout
    assert "run-tests" in log


def test_explore_cmd_prints_the_base_python_and_leaves_nothing():
    explored = inv("explore", "--cmd", "python3 -V")
    assert explored.returncode == 0, explored.stderr
    assert explored.stdout.splitlines()[-1].startswith("Python 3.13")
    assert not _dev_container()


def _dev_container() -> str:
    listed = docker("container", "ls", "--all", "--quiet", "--filter", "name=^my-project-dev$")
    return listed.stdout.strip()


class Terminal:
    """`inv explore` on a pseudo-terminal, driven like a person at the keyboard."""

    def __init__(self) -> None:
        self.controller, terminal = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "invoke", "explore"],
            cwd=ROOT,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            start_new_session=True,
            # The terminal becomes the session's controlling one, as a real terminal is.
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(terminal)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen in {self.seen[-500:]!r}"
            if select.select([self.controller], [], [], left)[0]:
                try:
                    self.seen += os.read(self.controller, 4096)
                except OSError:  # the other end closed
                    break
        assert text in self.seen, self.seen[-500:]

    def type(self, text: bytes) -> None:
        os.write(self.controller, text)

    def wait_for_the_shell(self) -> None:
        """Wait for the prompt, then for a command's answer: the shell is there, and listens."""
        self.expect(b"/project# ")
        self.type(b"echo ready-$((6 * 7))\n")
        self.expect(b"ready-42")

    def close(self) -> int:
        return self.process.wait(timeout=60)


@pytest.fixture
def terminal():
    """A Terminal; whatever a failing test leaves running is stopped and removed."""
    started = Terminal()
    yield started
    if started.process.poll() is None:
        os.killpg(started.process.pid, signal.SIGKILL)
        started.process.wait()
    os.close(started.controller)
    docker("container", "rm", "--force", "my-project-dev", check=False)


def test_explore_opens_a_shell_and_exit_removes_the_container(terminal):
    terminal.wait_for_the_shell()
    assert _dev_container()
    terminal.type(b"exit\n")
    assert terminal.close() == 0
    assert not _dev_container()


def test_ctrl_c_in_explore_leaves_no_container(terminal):
    """Ctrl-C reaches the shell in the container; the session, and its container, end on exit."""
    terminal.wait_for_the_shell()
    terminal.process.send_signal(signal.SIGINT)
    terminal.type(b"echo still-here\n")
    terminal.expect(b"still-here")
    terminal.type(b"exit\n")
    terminal.close()
    assert not _dev_container()


def test_a_closed_terminal_leaves_no_container(terminal):
    """SIGHUP, as when the terminal window closes, still removes the dev container."""
    terminal.wait_for_the_shell()
    terminal.process.send_signal(signal.SIGHUP)
    assert terminal.close() != 0
    assert wait_until(lambda: not _dev_container(), timeout=20)
