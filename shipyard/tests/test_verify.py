"""Verifiable releases, for real: `inv keygen`, `inv push` with the evidence beside the image,
and `inv verify`, against Debian's docker-registry on loopback. Each way that a release can
stop matching its source is one line."""

import json
import os
import re
import shutil
import subprocess
import time

import pytest
from support import VERSION, copy_project, docker, inv, last_line, need

from shipyard.tooling import oci, sandbox, signing

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict:
    """A copy of the project, a key pair, a registry, and the image built and pushed, signed."""
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    folder = tmp_path_factory.mktemp("verify")
    project = copy_project(folder / "project")
    with sandbox.registry(folder) as address:
        env = {
            "INVOKE_REGISTRY_URL": f"{address}/team",
            "INVOKE_DOCKER_IMAGE": f"my-project-signed-{os.getpid()}",
            "INVOKE_SIGNING_KEY": str(folder / "keys" / "cosign.key"),  # never in the tree
            "INVOKE_SIGNING_PUBLIC": str(folder / "keys" / "cosign.pub"),
        }
        for step in (["keygen"], ["build"], ["push"]):
            done = inv(*step, cwd=project, env=env)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "nothing to do" in inv("keygen", cwd=project, env=env).stdout
        assert oct((folder / "keys" / "cosign.key").stat().st_mode & 0o777) == "0o600"
        assert re.search(r"signed with .*cosign.key, .* \(\d+ kB beside the image\)", done.stdout)
        yield {"project": project, "env": env, "address": address, "push": done.stdout,
               "ref": f"{address}/team/{env['INVOKE_DOCKER_IMAGE']}:{VERSION}"}  # fmt: skip
        docker("image", "rm", "--force", f"{env['INVOKE_DOCKER_IMAGE']}:{VERSION}",
               f"{env['INVOKE_DOCKER_IMAGE']}:latest", check=False)  # fmt: skip


def verify(release: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return inv(
        "verify", release["ref"], *args, cwd=release["project"], env={**release["env"], **env}
    )


def test_a_pushed_release_verifies_with_the_cosign_tags_beside_it(release):
    start = time.monotonic()
    verified = verify(release)
    assert verified.returncode == 0, verified.stderr
    print(f"\n[verify] {time.monotonic() - start:.1f} s, no rebuild")
    ok = r"^ok: .*@sha256:\w+ \(linux/amd64\): signed, its SBOM and provenance attested"
    assert re.search(ok, verified.stdout, re.MULTILINE)
    # cosign's tags, beside the image: what `cosign verify --key` reads
    name, tag = release["ref"].rsplit(":", 1)
    repository = oci.Repository(name, insecure=True)
    _, _, image = repository.manifest(tag)
    for kind in ("sig", "att"):
        assert repository.manifest(f"sha256-{image.removeprefix('sha256:')}.{kind}")


def test_a_rebuild_of_the_commit_gives_the_very_same_image(release):
    start = time.monotonic()
    verified = verify(release, "--rebuild")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    print(f"\n[verify] {time.monotonic() - start:.1f} s, with --rebuild")
    assert "builds the very same image for linux/amd64" in verified.stdout


def test_another_image_under_the_tag_is_one_line(release, distroless):
    """Someone pushed another image under the release's tag: it carries no signature."""
    other = f"{release['ref'].rpartition(':')[0]}:other"
    docker("tag", distroless.ref, other)
    docker("push", other)
    docker("image", "rm", other)
    failed = verify({**release, "ref": other})
    assert failed.returncode == 1
    unsigned = r"(the registry has no signature|no signature of this digest verifies with)"
    assert re.fullmatch(rf"error: .*@sha256:\w+: {unsigned} .*", last_line(failed))


def test_another_key_is_one_line(release, tmp_path):
    signing_env = {"INVOKE_SIGNING_KEY": str(tmp_path / "x.key"),
                   "INVOKE_SIGNING_PUBLIC": str(tmp_path / "x.pub")}  # fmt: skip
    assert (
        inv("keygen", cwd=release["project"], env={**release["env"], **signing_env}).returncode == 0
    )
    failed = verify(release, **signing_env)
    assert failed.returncode == 1
    assert "no signature of this digest verifies with" in last_line(failed)
    assert last_line(failed).endswith("x.pub.")


def test_a_provenance_of_another_commit_is_one_line(release):
    """The image was built from the commit before: asked for the new one, verify says so."""
    project = release["project"]
    subprocess.run(["git", "commit", "--quiet", "--allow-empty", "-m", "later"], cwd=project,
                   check=True)  # fmt: skip
    try:
        failed = verify(release)
        assert failed.returncode == 1
        assert re.search(r"its provenance says it was built from \w{40}, not \w{40}\.$",
                         last_line(failed)), last_line(failed)  # fmt: skip
        assert verify(release, "--commit", "HEAD~1").returncode == 0
    finally:
        subprocess.run(["git", "reset", "--quiet", "--hard", "HEAD~1"], cwd=project, check=True)


def test_a_changed_sbom_is_one_line(release):
    """The SBOM attestation in the registry was swapped for one that is not signed by the key."""
    name, tag = release["ref"].rsplit(":", 1)
    repository = oci.Repository(name, insecure=True)
    _, _, image = repository.manifest(tag)
    att = json.loads(repository.manifest(signing.tag(image, "att"))[0])
    original = oci.encoded(att)
    layer = next(item for item in att["layers"]
                 if item["annotations"]["predicateType"] == signing.CYCLONEDX)  # fmt: skip
    envelope = json.loads(repository.blob(layer["digest"]))
    envelope["payload"] = envelope["payload"][:-8] + "AAAAAAA="
    changed = oci.encoded(envelope)
    layer.update(digest=repository.put_blob(changed), size=len(changed))
    repository.put_manifest(signing.tag(image, "att"), oci.encoded(att), oci.OCI_MANIFEST)
    try:
        failed = verify(release)
        assert failed.returncode == 1
        assert "the https://cyclonedx.org/bom attestation does not verify" in last_line(failed)
    finally:
        repository.put_manifest(signing.tag(image, "att"), original, oci.OCI_MANIFEST)
