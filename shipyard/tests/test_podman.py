"""Rootless Podman, beside the Docker Engine: the whole flow as an unprivileged user, with no
daemon (docker.command = podman), on a clone of the project that the user owns.

.ci/run makes the user (ROOTLESS), with subordinate ids and python.version's Python. The
release runs first, from the clone's first state, as a new user's would; then the tests of
the guarantees run again, as that user, on Podman: the very tests that hold Docker to them.
"""

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import DOCKER, PODMAN, VERSION, copy_project, docker, need, owners, sbom_of

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOTLESS = "rootless"  # the user that .ci/run makes


@dataclass
class User:
    """The unprivileged user, and the clone of the project in their home."""

    name: str
    home: Path
    clone: Path

    def run(self, *argv: str, timeout: float = 3600, **env: str) -> subprocess.CompletedProcess:
        """Run ARGV in the clone as the user, with Podman as the tasks' engine."""
        path = f"{self.home}/.local/bin:/usr/local/bin:/usr/bin:/bin"
        settings = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
                    "PATH": path, "INVOKE_DOCKER_COMMAND": "podman", **env}  # fmt: skip
        command = ["runuser", "-u", self.name, "--", "env", *map("=".join, settings.items())]
        return subprocess.run(
            [*command, *argv], cwd=self.clone, capture_output=True, text=True, timeout=timeout
        )

    def podman(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("podman", *args, timeout=600)


@pytest.fixture(scope="session")
def rootless(tmp_path_factory) -> User:
    """ROOTLESS, with a fresh clone of the project (this work tree's files) in their home."""
    need(not PODMAN, "these tests run Podman as another user: run them with Docker")
    need(os.geteuid() == 0 and shutil.which("podman"), "needs root, to act as another user")
    try:
        home = Path(pwd.getpwnam(ROOTLESS).pw_dir)
    except KeyError:
        need(False, f"no user {ROOTLESS}: .ci/run makes one, with subordinate ids")
    clone = home / "my-project"
    shutil.rmtree(clone, ignore_errors=True)
    copy_project(clone, share_venv=False)
    subprocess.run(["chown", "-R", f"{ROOTLESS}:", str(clone)], check=True)
    return User(ROOTLESS, home, clone)


@pytest.fixture(scope="session")
def released(rootless) -> subprocess.CompletedProcess:
    """`inv release`, as the user, from the clone's first state: no .venv, no image."""
    return rootless.run("inv", "release")


def test_a_release_on_rootless_podman_ships_what_docker_ships(rootless, released, distroless):
    """The same runtime: the same files (path, mode, owner, content), the same user, a size
    within 1 %, and an SBOM that attributes every ELF file."""
    assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
    assert f"released my-project:{VERSION}" in released.stdout
    podman = ["runuser", "-u", ROOTLESS, "--", "env", f"HOME={rootless.home}", "podman"]
    saved = rootless.home / "saved.tar"  # where both engines may write
    ours, theirs = (
        _files(DOCKER, distroless.ref, saved),
        _files(podman, distroless.ref, saved),
    )
    # Buildah leaves the folder that it mounts a RUN step's files on, /run, in the step's layer.
    assert sorted(ours.keys() - theirs.keys()) == []
    assert sorted(theirs.keys() - ours.keys()) in ([], ["/run"])
    assert sorted((path, ours[path], theirs.get(path)) for path in ours
                  if ours[path] != theirs.get(path)) == []  # fmt: skip
    inspect = ["image", "inspect", "--format", "{{.Config.User}} {{.Size}}", distroless.ref]
    user, size = docker(*inspect).stdout.split()
    their_user, their_size = rootless.podman(*inspect).stdout.split()
    assert their_user == user
    assert abs(int(their_size) - int(size)) <= 0.01 * int(size), (size, their_size)
    elves = {path for path, (_, _, _, digest) in theirs.items() if digest.startswith("ELF")}
    assert elves and sorted(elves - owners(sbom_of(distroless.ref, rootless.clone)).keys()) == []


def test_a_container_that_cannot_start_its_network_is_said_in_podman_s_words(rootless, released):
    """Where rootless Podman cannot start a container's network (slirp4netns needs
    /dev/net/tun), `inv audit` shows Podman's own last lines, and its line names the last
    one: it does not guess that Debian's archive is out of reach."""
    assert released.returncode == 0, "the release failed: see the first test"
    conf = rootless.home / "slirp4netns.conf"  # the user's own lends the host's network
    conf.write_text('[containers]\nnetns = "slirp4netns"\n')
    started = rootless.run("podman", "run", "--rm", "--pull=never", "--entrypoint", "true",
                           f"my-project:{VERSION}", CONTAINERS_CONF=str(conf))  # fmt: skip
    assert "image not known" not in started.stderr, started.stderr  # the release's, still here
    need(started.returncode != 0, "here a user's containers start their own network")
    audited = rootless.run("inv", "audit", CONTAINERS_CONF=str(conf))
    assert audited.returncode != 0
    said = [line for line in started.stderr.splitlines() if line.strip()][-1]
    *before, last = audited.stderr.strip().splitlines()
    assert said.strip() in before  # Podman's own words, first
    assert last.startswith("error: the container that asks Debian's archive failed (exit ")
    assert said.strip().rstrip(".") in last and "cannot be reached" not in last


def test_the_guarantees_hold_on_rootless_podman(rootless, released):
    """The suite, as the user, on Podman: the tests that hold Docker to the README's guarantees
    hold Podman to them (conftest.ON_PODMAN says which apply)."""
    assert released.returncode == 0, "the release failed: see the test above"
    tested = rootless.run("inv", "test", "--all", CI="true")
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-2000:]
    assert "test_guarantees.py" in tested.stdout and " passed" in tested.stdout


def _files(engine: list[str], ref: str, saved: Path) -> dict[str, tuple]:
    """Each file of the image REF on ENGINE, its layers laid one on the other: its mode, owner,
    group, and content (a digest; "ELF ..." for an ELF file). The engine saves REF to SAVED."""
    done = subprocess.run(
        [*engine, "save", "--output", str(saved), ref], capture_output=True, text=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, tuple] = {}
    try:
        with tarfile.open(saved) as image:
            [entry] = json.load(image.extractfile("manifest.json"))
            for layer in entry["Layers"]:
                with tarfile.open(fileobj=image.extractfile(layer)) as files:
                    for member in files:
                        path = "/" + member.name.removeprefix("./").rstrip("/")
                        folder, _, name = path.rpartition("/")
                        if name.startswith(".wh."):  # a whiteout: what it names is gone
                            found.pop(f"{folder}/{name.removeprefix('.wh.')}", None)
                            continue
                        content = member.linkname
                        if member.isfile():
                            data = files.extractfile(member).read()
                            kind = "ELF " if data[:4] == b"\x7fELF" else ""
                            content = kind + hashlib.sha256(data).hexdigest()
                        found[path] = (member.mode, member.uid, member.gid, content)
    finally:
        saved.unlink(missing_ok=True)
    return found
