"""Verifiable releases, for real: `inv push` signs with a key pair that a team made with cosign,
and `inv verify` and the README's cosign commands check the release, against Debian's
docker-registry on loopback. Each way that a release can stop matching its source fails
both, each in one line."""

import json
import os
import re
import shutil
import subprocess
import time

import pytest
from support import (
    VERSION,
    assert_evidence,
    copy_project,
    cosign_checks,
    docker,
    failures,
    inv,
    last_line,
    need,
)

from shipyard.tooling import cosign, sandbox

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TEAM_PASSWORD = "the team's"  # noqa: S105 # the throwaway key's, made below


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict:
    """A copy of the project, a key pair made by `cosign generate-key-pair` outside the tree, a
    registry, and the image built and pushed, signed with that pair."""
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    need(shutil.which("cosign"), f"no cosign ({cosign.INSTALL})")
    folder = tmp_path_factory.mktemp("verify")
    project = copy_project(folder / "project")
    keys = folder / "keys"
    keys.mkdir()
    subprocess.run(["cosign", "generate-key-pair", "--output-key-prefix", "release"], cwd=keys,
                   env={**os.environ, "COSIGN_PASSWORD": TEAM_PASSWORD}, check=True,
                   capture_output=True)  # fmt: skip
    with sandbox.registry(folder) as address:
        name = f"my-project-signed-{os.getpid()}"
        env = {
            "INVOKE_REGISTRY_URL": f"{address}/team",
            "INVOKE_DOCKER_IMAGE": name,
            "INVOKE_SIGNING_KEY": str(keys / "release.key"),  # never in the tree
            "INVOKE_SIGNING_PUBLIC": str(keys / "release.pub"),
            "COSIGN_PASSWORD": TEAM_PASSWORD,
        }
        for step in (["build"], ["push"]):
            done = inv(*step, cwd=project, env=env)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert re.search(r"^signed with \S+release.key by cosign, .* in \d+\.\d s", done.stdout,
                         re.MULTILINE)  # fmt: skip
        pushed = re.search(r"pushed and verified: \S+@(sha256:\w+)", done.stdout)
        yield {"project": project, "env": env, "repository": f"{address}/team/{name}",
               "ref": f"{address}/team/{name}:{VERSION}", "digest": pushed[1], "keys": keys,
               "sbom": project / "dist" / f"{name}-{VERSION}.cdx.json"}  # fmt: skip
        docker("image", "rm", "--force", f"{name}:{VERSION}", f"{name}:latest", check=False)


def verify(release: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return inv(
        "verify", release["ref"], *args, cwd=release["project"], env={**release["env"], **env}
    )


def cosign_says(release: dict, ref: str = "", public: str = "", **replace: str) -> dict:
    """The README's cosign commands on REF (the release's tag), with the public key PUBLIC (the
    release's), and more of REPLACE: what each said, by name (support.cosign_checks)."""
    public = public or str(release["keys"] / "release.pub")
    replace = {"cosign.pub": public, **replace}
    return cosign_checks(release["project"], ref or release["ref"], **replace)


def attest(release: dict, key: str, password: str, predicate) -> None:
    """Attest PREDICATE (a file) as the release's SBOM with KEY, in place of the one there."""
    image = f"{release['repository']}@{release['digest']}"
    argv = ["cosign", "attest", "--key", key, "--tlog-upload=false", "--replace", "--type",
            "cyclonedx", "--predicate", str(predicate), image]  # fmt: skip
    env = {**os.environ, "COSIGN_PASSWORD": password}
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=120)


def test_a_pushed_release_verifies_by_inv_verify_and_by_cosign(release):
    """A team's own cosign pair signs unchanged; `inv verify` and every cosign command of the
    README pass, cosign gives the SBOM back as dist/ holds it, and skopeo lists the evidence."""
    start = time.monotonic()
    verified = verify(release)
    assert verified.returncode == 0, verified.stderr
    print(f"\n[verify] {time.monotonic() - start:.1f} s, no rebuild")
    ok = r"^ok: .*@sha256:\w+ \(linux/amd64\): signed, its SBOM and provenance attested \(cosign\)"
    assert re.search(ok, verified.stdout, re.MULTILINE)
    assert_evidence(release["project"], release["repository"], {release["digest"]: release["sbom"]},
                    **{"cosign.pub": str(release["keys"] / "release.pub")})  # fmt: skip


def test_a_rebuild_of_the_commit_gives_the_very_same_image(release):
    start = time.monotonic()
    verified = verify(release, "--rebuild")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
    print(f"\n[verify] {time.monotonic() - start:.1f} s, with --rebuild")
    assert "builds the very same image for linux/amd64" in verified.stdout


def test_another_image_under_the_tag_is_one_line(release, distroless):
    """Someone pushed another image under the release's tag: it carries no signature."""
    other = f"{release['repository']}:other"
    docker("tag", distroless.ref, other)
    docker("push", other)
    docker("image", "rm", other)
    failed = verify({**release, "ref": other})
    assert failed.returncode == 1
    assert re.fullmatch(r"error: \S+@sha256:\w+: `cosign verify` with \S+release.pub fails: no "
                        r"signatures found\.", last_line(failed)), last_line(failed)  # fmt: skip
    assert "no signatures found" in cosign_says(release, other)["verify"].stderr


def test_another_key_is_one_line(release, tmp_path):
    signing_env = {"INVOKE_SIGNING_KEY": str(tmp_path / "x.key"),
                   "INVOKE_SIGNING_PUBLIC": str(tmp_path / "x.pub")}  # fmt: skip
    made = inv("keygen", cwd=release["project"], env={**release["env"], **signing_env})
    assert made.returncode == 0, made.stderr
    failed = verify(release, **signing_env)
    assert failed.returncode == 1
    assert re.search(r"`cosign verify` with \S+x.pub fails: no matching signatures: ",
                     last_line(failed)), last_line(failed)  # fmt: skip
    assert "no matching signatures" in cosign_says(release, public=str(tmp_path / "x.pub"))[
        "verify"].stderr  # fmt: skip


def test_a_provenance_of_another_commit_is_one_line(release):
    """The image was built from the commit before: asked for the new one, verify says so, and
    so does cosign, with the README's policy for that commit."""
    project = release["project"]
    subprocess.run(["git", "commit", "--quiet", "--allow-empty", "-m", "later"], cwd=project,
                   check=True)  # fmt: skip
    try:
        failed = verify(release)
        assert failed.returncode == 1
        assert re.search(r"its provenance says it was built from \w{40}, not \w{40}\.$",
                         last_line(failed)), last_line(failed)  # fmt: skip
        policy = cosign_says(release)["verify-attestation slsaprovenance1 policy"]
        assert policy.returncode == 1 and "gitCommit: conflicting values" in policy.stderr
        assert verify(release, "--commit", "HEAD~1").returncode == 0
        before = cosign_says(release, **{"rev-parse HEAD": "rev-parse HEAD~1"})
        assert before["verify-attestation slsaprovenance1 policy"].returncode == 0
    finally:
        subprocess.run(["git", "reset", "--quiet", "--hard", "HEAD~1"], cwd=project, check=True)


def test_a_changed_sbom_is_one_line(release, tmp_path):
    """The SBOM attestation in the registry was swapped for another, not signed by the key."""
    planted = tmp_path / "planted.cdx.json"
    document = json.loads(release["sbom"].read_text())
    planted.write_text(json.dumps({**document, "components": [{"name": "planted"}]}))
    theirs = tmp_path / "theirs"
    made = ["cosign", "generate-key-pair", "--output-key-prefix", theirs]
    subprocess.run(made, env={**os.environ, "COSIGN_PASSWORD": ""}, check=True, capture_output=True)
    attest(release, f"{theirs}.key", "", planted)
    try:
        failed = verify(release)
        assert failed.returncode == 1
        said = last_line(failed)
        # cosign sets aside what the key did not sign: no SBOM is left.
        unsigned = "none of the attestations matched the predicate type: cyclonedx"
        assert re.search(rf"`cosign verify-attestation --type cyclonedx` with \S+release.pub "
                         rf"fails: {unsigned}, found: https://slsa.dev/provenance/v1\.$",
                         said), said  # fmt: skip
        sbom = cosign_says(release)["verify-attestation cyclonedx"]
        assert sbom.returncode == 1 and unsigned in sbom.stderr
    finally:
        attest(release, str(release["keys"] / "release.key"), TEAM_PASSWORD, release["sbom"])
    assert verify(release).returncode == 0


def test_an_sbom_of_another_image_signed_by_the_key_is_one_line(release, tmp_path):
    """What cosign cannot know: the key signed an SBOM, of another image. cosign passes it;
    `inv verify` finds that it describes another image than the one whose config the
    manifest names."""
    other = tmp_path / "other.cdx.json"
    other.write_text(release["sbom"].read_text().replace("my-project:image:id", "elsewhere"))
    attest(release, str(release["keys"] / "release.key"), TEAM_PASSWORD, other)
    try:
        checked = cosign_says(release)
        assert not failures(list(checked.values())), failures(list(checked.values()))
        failed = verify(release)
        assert failed.returncode == 1
        assert re.search(r"@sha256:\w+: the SBOM describes another image \(None\)\.$",
                         last_line(failed)), last_line(failed)  # fmt: skip
    finally:
        attest(release, str(release["keys"] / "release.key"), TEAM_PASSWORD, release["sbom"])
