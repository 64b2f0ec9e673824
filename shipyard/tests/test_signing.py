"""tooling/signing.py and tooling/oci.py against a real registry (Debian's docker-registry,
on loopback), with no Docker Engine: cosign's layout, written and read back, and each way
that what the registry holds can stop matching what was signed."""

import base64
import json
import shutil
import socket

import pytest
from invoke import Context
from support import need

from shipyard.tooling import oci, sandbox, signing

IMAGE_CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}


@pytest.fixture
def repository(tmp_path) -> oci.Repository:
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    with sandbox.registry(tmp_path) as address:
        yield oci.Repository(f"{address}/team/app", insecure=True)


@pytest.fixture
def keys(tmp_path) -> dict:
    need(shutil.which("openssl"), "no openssl")
    made = {}
    for name in ("ours", "theirs"):
        signing.keygen(Context(), tmp_path / f"{name}.key", tmp_path / f"{name}.pub")
        made[name] = (tmp_path / f"{name}.key", tmp_path / f"{name}.pub")
    return made


def pushed_image(repository: oci.Repository, tag: str, config: dict = IMAGE_CONFIG) -> str:
    """An image manifest (a config, no layer) under TAG: its digest."""
    body = oci.encoded(config)
    manifest = oci.encoded({
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "layers": [],
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(body),
                   "digest": repository.put_blob(body)},
    })  # fmt: skip
    return repository.put_manifest(tag, manifest, oci.OCI_MANIFEST)


PREDICATES = {
    signing.CYCLONEDX: {"bomFormat": "CycloneDX", "components": []},
    signing.SLSA: {"buildDefinition": {"externalParameters": {}}},
}


def test_what_is_signed_verifies_and_names_its_digest(repository, keys):
    image = pushed_image(repository, "1.0")
    key, public = keys["ours"]
    pushed = signing.push(repository, image, key, PREDICATES)
    assert pushed.tags == [signing.tag(image, "sig"), signing.tag(image, "att")]
    assert pushed.tags[0] == "sha256-" + image.removeprefix("sha256:") + ".sig"
    assert signing.verify(repository, image, public) == PREDICATES
    # cosign's simple-signing payload, and its signature in cosign's annotation
    manifest = json.loads(repository.manifest(pushed.tags[0])[0])
    [layer] = manifest["layers"]
    assert layer["mediaType"] == signing.SIMPLE_SIGNING
    payload = json.loads(repository.blob(layer["digest"]))
    assert payload["critical"]["image"]["docker-manifest-digest"] == image
    assert payload["critical"]["identity"]["docker-reference"] == repository.name
    assert signing.verifies(
        public, repository.blob(layer["digest"]), layer["annotations"][signing.SIGNATURE]
    )


def test_another_key_another_image_and_a_changed_attestation_each_fail_in_one_line(
    repository, keys
):
    image = pushed_image(repository, "1.0")
    key, public = keys["ours"]
    signing.push(repository, image, key, PREDICATES)
    with pytest.raises(
        signing.Unverified, match=r"no signature of this digest verifies with .*theirs.pub"
    ):
        signing.verify(repository, image, keys["theirs"][1])
    other = pushed_image(repository, "1.0", {**IMAGE_CONFIG, "os": "other"})  # the tag moved
    with pytest.raises(signing.Unverified, match=r"the registry has no signature"):
        signing.verify(repository, other, public)
    # The SBOM's statement changed in the registry, its signature kept.
    att = json.loads(repository.manifest(signing.tag(image, "att"))[0])
    layer = att["layers"][0]
    envelope = json.loads(repository.blob(layer["digest"]))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["components"] = [{"name": "planted", "version": "1"}]
    envelope["payload"] = base64.b64encode(oci.encoded(statement)).decode()
    changed = oci.encoded(envelope)
    att["layers"][0] = {**layer, "digest": repository.put_blob(changed), "size": len(changed)}
    repository.put_manifest(signing.tag(image, "att"), oci.encoded(att), oci.OCI_MANIFEST)
    with pytest.raises(signing.Unverified, match=r"cyclonedx.org/bom attestation does not verify"):
        signing.verify(repository, image, public)


def test_an_attestation_of_another_image_is_refused(repository, keys):
    """A valid attestation, copied from one image to another's tag, names the first."""
    first, second = pushed_image(repository, "1"), pushed_image(repository, "2", {"os": "x"})
    key, public = keys["ours"]
    signing.push(repository, first, key, PREDICATES)
    signing.push(repository, second, key, PREDICATES)
    copied = repository.manifest(signing.tag(first, "att"))[0]
    repository.put_manifest(signing.tag(second, "att"), copied, oci.OCI_MANIFEST)
    with pytest.raises(signing.Unverified, match=r"attestation is of another image"):
        signing.verify(repository, second, public)


def test_a_registry_that_does_not_answer_is_one_line(keys):
    # A port held bound, never listening: a free one may be the very port that the client's
    # connection leaves from, and then it connects to itself (TCP simultaneous open).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        down = oci.Repository(f"127.0.0.1:{held.getsockname()[1]}/team/app", insecure=True)
        with pytest.raises(oci.RegistryError, match=r"does not answer"):
            down.manifest("1.0")
