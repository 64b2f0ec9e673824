"""Beyond one machine: amd64 and arm64 from one release, and a build cache that a fresh engine
rebuilds from, through a real registry (Debian's docker-registry, on loopback).

A fresh engine is a second dockerd with no image and no build cache (conftest.py): what it
pulls and runs is what the registry serves, with nothing of the first engine's to help.
arm64's image is built on amd64's CPU; it runs under qemu's emulation.
"""

import hashlib
import json
import os
import re
import shutil
import tarfile

import pytest
from support import (
    ROLE,
    SIGNING_ENV,
    VERSION,
    assert_evidence,
    commit,
    copy_project,
    docker,
    free_port,
    inv,
    locked,
    need,
    structure_test,
)

from shipyard.tooling import cosign, engine, sandbox

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PLATFORMS = ["linux/amd64", "linux/arm64"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One registry for the module: the release's, and the cache's."""
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    with sandbox.registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture(scope="module")
def released(registry, tmp_path_factory) -> dict:
    """A release for both platforms, from a copy of the project: the test stage and the
    runtime of each, then `inv push`, signed (test_publish.py runs a whole `inv release
    --push`). Its environment, and the digest of the manifest list that push printed."""
    project = copy_project(tmp_path_factory.mktemp("two-platforms") / "project")
    name = f"my-project-two-{os.getpid()}"
    env = {
        "INVOKE_DOCKER_PLATFORMS": ",".join(PLATFORMS),
        "INVOKE_DOCKER_IMAGE": name,
        "INVOKE_REGISTRY_URL": f"{registry}/team",
        **SIGNING_ENV,
    }
    need(shutil.which("cosign"), f"no cosign ({cosign.INSTALL})")
    made = inv("keygen", cwd=project, env=env)  # push signs the list and each image
    assert made.returncode == 0, made.stderr
    commit(project, "the public key")
    for step in (["build", "--test"], ["build"]):
        built = inv(*step, cwd=project, env=env, timeout=3600)
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        for platform in PLATFORMS:
            assert re.search(rf"\({platform}\): (built|unchanged)", built.stdout), built.stdout[
                -2000:
            ]
        # arm64's builder runs on the engine's own CPU: a cross build.
        assert re.search(r"--platform linux/arm64 .*BUILDER_PLATFORM=linux/amd64", built.stdout)
    released = inv("push", cwd=project, env=env, timeout=3600)
    assert released.returncode == 0, released.stdout[-4000:] + released.stderr[-4000:]
    found = re.search(rf"pushed and verified: ({registry}/team/{name}@sha256:[0-9a-f]{{64}})",
                      released.stdout)  # fmt: skip
    assert found, released.stdout[-3000:]
    yield {"env": env, "reference": found[1], "name": name, "output": released.stdout,
           "project": project}  # fmt: skip
    docker("image", "rm", "--force", f"{name}:{VERSION}", f"{name}:latest", f"{name}:test",
           f"{name}:{VERSION}-arm64", f"{name}:test-arm64", check=False)  # fmt: skip


def test_a_two_platform_release_round_trips_through_the_registry(released, fresh_engine):
    """The list names both platforms; a fresh engine pulls each by the list's digest, and
    each says hello and computes with polars (arm64 under emulation)."""
    env = {**os.environ, "DOCKER_HOST": fresh_engine}
    reference = released["reference"]
    for platform in PLATFORMS:
        assert docker("pull", "--platform", platform, reference, env=env).returncode == 0
        found = json.loads(docker("image", "inspect", reference, env=env).stdout)[0]
        assert f"{found['Os']}/{found['Architecture']}" == platform
        run = ["run", "--rm", "--network", "none", "--platform", platform, reference]
        greeted = docker(*run, "say-hello", "--name", "alice", env=env)
        assert greeted.stdout == "Hello alice!\n", greeted.stderr
        computed = docker(*run, "show-deps", env=env)
        assert "  blue 6\n  red 9\n" in computed.stdout, computed.stderr
        docker("image", "rm", reference, env=env)  # the list's digest names the next one too


def test_the_list_and_each_image_are_signed_and_cosign_verifies_each(released):
    """cosign signed the list and each platform's image, and attested each image's SBOM and
    provenance: every cosign command of the README passes on each image that push printed,
    `cosign verify` on the list, and `inv verify` of the tag checks both platforms."""
    repository, _, listed = released["reference"].partition("@")
    pushed = re.findall(rf"^  (linux/\w+): {repository}@(sha256:\w+), SBOM (\S+)$",
                        released["output"], re.MULTILINE)  # fmt: skip
    assert sorted(platform for platform, _, _ in pushed) == PLATFORMS
    images = {digest: released["project"] / written for _, digest, written in pushed}
    assert_evidence(released["project"], repository, images, listed, released["env"])
    verified = inv("verify", f"{repository}:{VERSION}", cwd=released["project"],
                   env=released["env"])  # fmt: skip
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    for platform, digest, _ in pushed:
        assert f"ok: {repository}@{digest} ({platform}): signed" in verified.stdout


def test_the_arm64_image_keeps_the_promises(released):
    """User 10001, no shell, no pip, the labels, commands and exit codes: under emulation."""
    ref = f"{released['name']}:{VERSION}-arm64"
    assert docker("image", "inspect", "--format", "{{.Architecture}}", ref).stdout == "arm64\n"
    checked = structure_test(ref, "distroless", platform="linux/arm64")
    assert checked.returncode == 0, checked.stdout[-4000:]
    amd64 = int(
        docker("image", "inspect", "--format", "{{.Size}}", f"{released['name']}:{VERSION}").stdout
    )
    arm64 = int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout)
    assert abs(arm64 - amd64) <= 0.10 * amd64, (arm64, amd64)


def _files(ref: str, platform: str, folder) -> dict[str, tuple]:
    """Every path of the image REF, with its kind, mode, owner, size and content's digest."""
    container = docker("create", "--platform", platform, ref, "none").stdout.strip()
    try:
        docker("export", "--output", str(folder / "image.tar"), container)
    finally:
        docker("container", "rm", container)
    with tarfile.open(folder / "image.tar") as archive:
        return {
            member.name: (member.type, member.mode, member.uid, member.size,
                          hashlib.sha256(archive.extractfile(member).read()).hexdigest()
                          if member.isfile() else member.linkname)
            for member in archive
        }  # fmt: skip


def test_the_cross_built_arm64_image_is_the_one_that_emulation_builds(released, tmp_path):
    """arm64's image was built on amd64's CPU (emulating only its ldconfig and smoke test);
    emulating every step gives the same files, byte for byte, and so the same image. Its SBOM
    attributes every ELF file."""
    ref = f"{released['name']}:{VERSION}-arm64"
    (tmp_path / "cross").mkdir()
    (tmp_path / "emulated").mkdir()
    cross = docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
    ours = _files(cross, "linux/arm64", tmp_path / "cross")
    # The provenance names what each build installed: the strip of amd64's CPU, for arm64.
    assert "pkg:deb/debian/binutils-aarch64-linux-gnu?arch=amd64" in _built_with(released)
    env = {**released["env"], "INVOKE_DOCKER_PLATFORMS": "linux/arm64", "INVOKE_DOCKER_CROSS": "0"}
    built = inv("build", "--skip-import-check", cwd=released["project"], env=env, timeout=3600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "aarch64-linux-gnu-strip" not in built.stdout + built.stderr  # emulated, this time
    theirs = _files(ref, "linux/arm64", tmp_path / "emulated")
    assert sorted(ours) == sorted(theirs)
    assert sorted(path for path in ours if ours[path] != theirs[path]) == []
    assert docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == cross
    sbom = released["project"] / "dist" / f"{released['name']}-{VERSION}-arm64.cdx.json"
    properties = json.loads(sbom.read_text())["metadata"]["component"]["properties"]
    assert [item for item in properties if item["name"] == "my-project:unattributed"] == []
    assert "pkg:deb/debian/binutils?arch=arm64" in _built_with(released)  # the emulated strip


def _built_with(released: dict) -> set[str]:
    """What the provenance of arm64's image says its build installed: NAME?arch=ARCH each."""
    made = released["project"] / "dist" / f"{released['name']}-{VERSION}-arm64.provenance.json"
    resolved = json.loads(made.read_text())["buildDefinition"]["resolvedDependencies"]
    return {re.sub(r"@[^?]*", "", item["uri"]) for item in resolved
            if item.get("annotations", {}).get("use") == "build"}  # fmt: skip


def test_a_fresh_engine_rebuilds_from_the_registry_cache_running_nothing(registry, fresh_engine):
    """A build fills the cache; a fresh engine, pointed at it, runs no step: no download, no
    compiling. It makes the very same layers, and the very same image."""
    name = f"my-project-cached-{os.getpid()}"
    env = {"INVOKE_REGISTRY_CACHE": f"{registry}/team/cache", "INVOKE_DOCKER_IMAGE": name}
    try:
        warm = inv("build", env=env)
        assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
        cold = inv("build", env={**env, "DOCKER_HOST": fresh_engine})
        assert cold.returncode == 0, cold.stdout[-3000:] + cold.stderr[-3000:]
        log = cold.stdout + cold.stderr
        assert "from the build cache" in log or "python:" in log  # the base came from somewhere
        assert not engine.cache_missed(log)
        assert engine.ran(log) == []
        layers = "{{json .RootFS.Layers}}"
        fresh = {**os.environ, "DOCKER_HOST": fresh_engine}
        assert docker(
            "image", "inspect", "--format", layers, f"{name}:{VERSION}", env=fresh
        ).stdout == (docker("image", "inspect", "--format", layers, f"{name}:{VERSION}").stdout)
        # And the very same image: every time in its config is the commit's, on either engine.
        identity = ["image", "inspect", "--format", "{{.Id}}", f"{name}:{VERSION}"]
        assert docker(*identity, env=fresh).stdout == docker(*identity).stdout
    finally:
        mine = [f"{name}:{VERSION}", f"{name}:latest", *tagged(env["INVOKE_REGISTRY_CACHE"])]
        docker("image", "rm", "--force", *mine, check=False)


def tagged(repository: str) -> list[str]:
    """Every tag of REPOSITORY on the engine: what a build tagged to push to its cache."""
    listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository)
    return listed.stdout.split()


def built_beside(distroless, env: dict) -> list[str]:
    """`inv build` with ENV, under a name of its own; the warnings it printed. It must build."""
    name = f"my-project-warned-{os.getpid()}"
    try:
        built = inv("build", env={**env, "INVOKE_DOCKER_IMAGE": name})
        assert built.returncode == 0, built.stderr[-3000:]
        labels = json.loads(docker("image", "inspect", f"{name}:{VERSION}").stdout)[0]["Config"]
        assert labels["Labels"][ROLE] == "runtime"
        return [line for line in built.stdout.splitlines() if line.startswith("warning:")]
    finally:
        mine = [f"{name}:{VERSION}", f"{name}:latest", *tagged(env["INVOKE_REGISTRY_CACHE"])]
        docker("image", "rm", "--force", *mine, check=False)


def test_a_cache_that_does_not_answer_is_one_warning_and_a_good_build(distroless):
    """Nothing listens where the cache should be: one warning line, and the image is built."""
    down = f"127.0.0.1:{free_port()}/team/cache"
    warnings = built_beside(distroless, {"INVOKE_REGISTRY_CACHE": down})
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"warning: the build cache {down} does not answer")


def test_a_cache_that_refuses_is_one_warning_and_a_good_build(distroless, tmp_path):
    """A registry that wants a login nobody gave: one warning line, and the image is built."""
    with sandbox.registry(tmp_path, locked(tmp_path)) as address:
        cache = f"{address}/team/cache"
        env = {"INVOKE_REGISTRY_CACHE": cache, "DOCKER_CONFIG": str(tmp_path / "config")}
        warnings = built_beside(distroless, env)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"warning: the build cache {cache} took nothing (")
