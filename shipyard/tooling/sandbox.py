"""Throwaway infrastructure for the tests and the benchmark: a registry on loopback, and a second,
empty Docker Engine beside the first. Each is started in a folder of its own and stopped after.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# The second engine's bridge: an engine started with none would delete the first one's docker0.
BRIDGE, BRIDGE_ADDRESS = "mp-fresh0", "10.213.0.1/24"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def registry_answers(address: str) -> bool:
    """Whether a registry answers at ADDRESS (200, or 401 when it wants a login)."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as answer:
            return answer.status == 200
    except OSError as error:
        return getattr(error, "code", None) == 401  # up, and asking for credentials


@contextmanager
def registry(folder: Path, auth: str = "") -> Iterator[str]:
    """Debian's docker-registry on a free loopback port, its storage in FOLDER: its address.
    Docker pushes to 127.0.0.1 without TLS. AUTH is more of its YAML configuration."""
    server = shutil.which("docker-registry")
    if not server:
        raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
    address = f"127.0.0.1:{free_port()}"
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'storage'}}}}}\n"
        f"http: {{addr: {address}}}\n" + auth
    )
    with (folder / "registry.log").open("w") as log:
        process = subprocess.Popen([server, "serve", config], stdout=log, stderr=log)
    try:
        if not wait_until(lambda: registry_answers(address), timeout=20):
            raise RuntimeError((folder / "registry.log").read_text())
        yield address
    finally:
        process.terminate()
        process.wait()


# What lets the second engine's containers reach the internet, as the first one's do: its
# traffic forwarded both ways and masqueraded. Rules of its own, inserted and then deleted.
NAT = (
    ["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "ACCEPT"],
    ["FORWARD", "-o", BRIDGE, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
     "-j", "ACCEPT"],
    ["POSTROUTING", "-t", "nat", "-s", BRIDGE_ADDRESS, "!", "-o", BRIDGE, "-j", "MASQUERADE"],
)  # fmt: skip


@contextmanager
def engine(docker: list[str], internet: bool = False) -> Iterator[str]:
    """A second Docker Engine, with no image and no build cache: its DOCKER_HOST. It needs
    root and dockerd. Its containers reach the host, and with INTERNET the internet too."""
    dockerd = shutil.which("dockerd")
    if not dockerd or os.geteuid() != 0:
        raise RuntimeError("a second Docker Engine needs root and dockerd")
    ip = ["ip", "link", "add", BRIDGE, "type", "bridge"], ["ip", "addr", "add", BRIDGE_ADDRESS,
          "dev", BRIDGE], ["ip", "link", "set", BRIDGE, "up"]  # fmt: skip
    for command in ip:
        subprocess.run(command, check=True, capture_output=True)
    for rule in NAT if internet else ():
        subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
    folder = Path(tempfile.mkdtemp(prefix="my-project-engine-"))  # short: sockets have a limit
    host = f"unix://{folder}/docker.sock"
    with (folder / "dockerd.log").open("w") as log:
        daemon = subprocess.Popen(
            [dockerd, "--data-root", folder / "data", "--exec-root", folder / "exec",
             "--pidfile", folder / "pid", "--host", host, "--bridge", BRIDGE,
             "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=log,
        )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": host}

    def answers() -> bool:
        return subprocess.run([*docker, "version"], env=env, capture_output=True).returncode == 0

    try:
        if not wait_until(answers, timeout=60):
            raise RuntimeError((folder / "dockerd.log").read_text()[-3000:])
        yield host
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        for rule in NAT if internet else ():
            subprocess.run(["iptables", "-D", *rule], check=False, capture_output=True)
        subprocess.run(["ip", "link", "delete", BRIDGE], check=False, capture_output=True)
        subprocess.run(["umount", "--recursive", "--lazy", folder / "data"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
