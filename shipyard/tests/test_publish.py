"""push and `release --push`, against a real registry: Debian's docker-registry, on loopback.

Each registry is started by a fixture on a free 127.0.0.1 port, with its storage in a
temporary folder, and stopped afterwards. Docker pushes to 127.0.0.1 without TLS. The round
trip is the README's signed release, checked by cosign's own commands: these tests run on
rootless Podman too (test_podman.py), so that both engines' pushes are held to them.
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from support import (
    DOCKER,
    PODMAN,
    SIGNING_ENV,
    VERSION,
    assert_evidence,
    docker,
    failures,
    free_port,
    image_id,
    inv,
    last_line,
    locked,
    need,
    readme_blocks,
    run_commands,
)

from shipyard.tooling import sandbox

pytestmark = pytest.mark.docker


@pytest.fixture
def locked_registry(tmp_path):
    """A registry that wants a login."""
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    with sandbox.registry(tmp_path, locked(tmp_path)) as address:
        yield address


def _catalog(address: str) -> list[str]:
    with urllib.request.urlopen(f"http://{address}/v2/_catalog", timeout=5) as answer:
        return json.load(answer)["repositories"]


def test_the_readme_s_signed_release_round_trips_and_cosign_verifies_it(registry, project):
    """The README's sequence, as written: `inv keygen`, its public key committed, `inv release
    --push`, `inv verify`. The push ends with a digest, signed by cosign: every cosign command
    of the README passes, and gives the SBOM back; skopeo lists the evidence. Pulled by its
    digest, the image greets alice."""
    name = f"my-project-published-{os.getpid()}"
    env = {"INVOKE_REGISTRY_URL": f"{registry}/team", "INVOKE_DOCKER_IMAGE": name, **SIGNING_ENV}
    [sequence, _] = readme_blocks("Verifying a release")
    ran = run_commands(
        sequence, project, env, {"REGISTRY/team/my-project": f"{registry}/team/{name}"}
    )
    assert not failures(ran), failures(ran)
    keygen, _, released, verified = ran
    assert "commit it (git add cosign.pub && git commit)" in keygen.stdout
    found = re.search(
        rf"pushed and verified: ({registry}/team/{name}@sha256:[0-9a-f]{{64}})", released.stdout
    )
    assert found, released.stdout[-3000:]
    assert re.search(r"^signed with cosign.key by cosign, .* in \d+\.\d s", released.stdout, re.M)
    assert re.search(r"^verified .* in \d+\.\d s$", verified.stdout, re.M)
    reference = found[1]
    digest = reference.partition("@")[2]
    assert_evidence(project, f"{registry}/team/{name}",
                    {digest: project / "dist" / f"{name}-{VERSION}.cdx.json"}, env=env)  # fmt: skip
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=project, capture_output=True, text=True
    )
    pushed = json.loads(docker("image", "inspect", f"{registry}/team/{name}:{VERSION}").stdout)[0]
    assert reference in pushed["RepoDigests"]
    for tag in (VERSION, revision.stdout.strip(), "latest"):
        assert f"{registry}/team/{name}:{tag}" in pushed["RepoTags"]
    # Remove the image, every tag of it, then get it back by its digest alone.
    docker("image", "rm", "--force", pushed["Id"])
    assert not image_id(reference)
    try:
        plain_http = ["--tls-verify=false"] if PODMAN else []  # as the tasks tell Podman
        assert docker("pull", *plain_http, reference).returncode == 0
        greeted = docker("run", "--rm", reference, "say-hello", "--name", "alice")
        assert greeted.stdout == "Hello alice!\n"
    finally:
        docker("image", "rm", "--force", reference, check=False)


def test_push_refuses_a_dirty_tree(registry, project, distroless):
    """Uncommitted changes would make the revision tag lie: nothing is pushed."""
    (project / "main.py").write_text((project / "main.py").read_text() + "# edited\n")
    refused = inv("push", cwd=project, env={"INVOKE_REGISTRY_URL": registry})
    assert refused.returncode == 1
    assert "uncommitted changes (main.py)" in last_line(refused)
    assert "--allow-dirty" in last_line(refused)
    assert _catalog(registry) == []


def test_push_to_a_registry_that_is_down(project, distroless):
    """One line that names the registry; no retries; the local image stays."""
    down = f"127.0.0.1:{free_port()}/team"
    start = time.monotonic()
    failed = inv("push", cwd=project, env={"INVOKE_REGISTRY_URL": down})
    assert failed.returncode != 0
    assert time.monotonic() - start < 15
    assert last_line(failed) == (
        f"error: the registry {down} refused or did not answer. "
        f"Check that {down} is the right address and that it is up."
    )
    assert image_id(distroless.ref)


def test_push_without_a_login_says_to_log_in(locked_registry, project, distroless, tmp_path):
    (tmp_path / "auth.json").write_text('{"auths": {}}')  # no login, for Docker nor Podman
    env = {"INVOKE_REGISTRY_URL": locked_registry, "DOCKER_CONFIG": str(tmp_path / "config"),
           "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}  # fmt: skip
    failed = inv("push", cwd=project, env=env)
    assert failed.returncode != 0
    cli = Path(DOCKER[0]).name  # docker, or podman
    assert last_line(failed).endswith(
        f"Log in first: `{cli} login {locked_registry}` (or your credential helper)."
    )
    assert image_id(distroless.ref)
