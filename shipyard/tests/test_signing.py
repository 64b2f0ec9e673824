"""tooling/cosign.py and tooling/signing.py against a real registry (Debian's docker-registry, on
loopback), with no engine: cosign's own key pairs, signatures and attestations, read back by
cosign and listed by skopeo; and each way that a key, a password or cosign itself is missing
or wrong, in one line. The images are a config and no layer, pushed by skopeo."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from invoke import Exit
from support import context, need, skopeo, tags

from shipyard.tooling import cosign, oci, sandbox, signing

PASSWORD = "test-password"  # noqa: S105 # the tests' throwaway keys' password
SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.5",
        "components": [{"name": "a<b>&c", "version": "1", "purl": "pkg:pypi/a@1"}]}  # fmt: skip
# As tooling/provenance.py writes it: invocationId is SLSA v1's own spelling.
PROVENANCE = {
    "buildDefinition": {
        "buildType": "https://example.invalid/Dockerfile",
        "externalParameters": {"source": {"uri": "git+x", "digest": {"gitCommit": "c" * 40}}},
        "resolvedDependencies": [{"uri": "pkg:deb/debian/libc6@2.41?arch=amd64",
                                  "annotations": {"use": "runtime"}}],
    },
    "runDetails": {"builder": {"id": "x"}, "metadata": {"invocationId": "my-project:c:amd64"}},
}  # fmt: skip


@pytest.fixture
def repository(tmp_path) -> str:
    need(shutil.which("docker-registry"), "no docker-registry (apt-get install docker-registry)")
    need(shutil.which("skopeo"), "no skopeo (apt-get install skopeo)")
    need(shutil.which("cosign"), f"no cosign ({cosign.INSTALL})")
    with sandbox.registry(tmp_path) as address:
        yield f"{address}/team/app"


@pytest.fixture
def c(tmp_path, monkeypatch):
    """The project's settings, with a key pair in TMP_PATH, made by `inv keygen`'s cosign."""
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    made = context()
    made.config.signing.key = str(tmp_path / "keys" / "cosign.key")
    made.config.signing.public = str(tmp_path / "keys" / "cosign.pub")
    return made


def pushed_image(repository: str, tag: str, folder: Path, system: str = "linux") -> str:
    """An image of a config and no layer, pushed by skopeo from an OCI layout: REPOSITORY@DIGEST."""
    layout = folder / f"layout-{tag}"
    (layout / "blobs" / "sha256").mkdir(parents=True)

    def blob(document: dict) -> dict:
        data = json.dumps(document).encode()
        digest = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = blob({"architecture": "amd64", "os": system, "rootfs": {"type": "layers",
                   "diff_ids": []}})  # fmt: skip
    manifest = blob({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "layers": [],
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                **config}})  # fmt: skip
    index = {"schemaVersion": 2, "manifests": [{"mediaType": oci.OCI_MANIFEST, **manifest,
             "annotations": {"org.opencontainers.image.ref.name": tag}}]}  # fmt: skip
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    told = folder / "digest"
    skopeo("copy", "--quiet", "--dest-tls-verify=false", "--digestfile", str(told),
           f"oci:{layout}:{tag}", f"docker://{repository}:{tag}")  # fmt: skip
    return f"{repository}@{told.read_text().strip()}"


def predicates(folder: Path) -> dict[str, Path]:
    written = {signing.CYCLONEDX: folder / "sbom.cdx.json", signing.SLSA: folder / "prov.json"}
    written[signing.CYCLONEDX].write_text(json.dumps(SBOM, indent=1))
    written[signing.SLSA].write_text(json.dumps(PROVENANCE, indent=1))
    return written


def test_keygen_s_pair_signs_and_attests_and_cosign_reads_it_back(c, repository, tmp_path):
    """The pair: the private key cosign's, encrypted, its owner's alone. What it signs, cosign
    verifies; what it attests comes back as written (the provenance too, given as its URI),
    once a type however often attested; skopeo lists the signature and the attestations."""
    key, public = Path(c.signing.key), Path(c.signing.public)
    cosign.keygen(c, key, public)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.read_text().splitlines()[0] in cosign.KEY_HEADERS
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert sorted(path.name for path in key.parent.iterdir()) == ["cosign.key", "cosign.pub"]
    image = pushed_image(repository, "1.0", tmp_path)
    signer = signing.signer(c)
    assert signer == signing.Signer(key, PASSWORD)
    cosign.sign(c, key, signer.password, [image], insecure=True)
    for _ in range(2):  # a push again replaces them
        for kind, predicate in predicates(tmp_path).items():
            cosign.attest(c, key, signer.password, image, kind, predicate, insecure=True)
    cosign.verify(c, public, image, insecure=True)
    for kind, expected in ((signing.CYCLONEDX, SBOM), (signing.SLSA, PROVENANCE),
                           ("slsaprovenance1", PROVENANCE)):  # fmt: skip
        [statement] = cosign.verify_attestation(c, public, image, kind, insecure=True)
        assert statement["predicate"] == expected
        assert statement["subject"][0]["digest"]["sha256"] == image.rpartition(":")[2]
    hexes = image.rpartition(":")[2]
    assert {f"sha256-{hexes}.sig", f"sha256-{hexes}.att"} <= set(tags(repository))


def test_a_pair_that_a_team_made_with_cosign_signs_unchanged(c, repository, tmp_path, monkeypatch):
    """`cosign generate-key-pair`, with a password of its own, named by the two settings."""
    team = tmp_path / "team"
    team.mkdir()
    env = {**os.environ, "COSIGN_PASSWORD": "the team's"}
    subprocess.run(["cosign", "generate-key-pair", "--output-key-prefix", "release"], cwd=team,
                   env=env, check=True, capture_output=True)  # fmt: skip
    c.config.signing.key, c.config.signing.public = str(team / "release.key"), str(team / "p")
    monkeypatch.setenv("COSIGN_PASSWORD", "the team's")
    signer = signing.signer(c)
    image = pushed_image(repository, "1.0", tmp_path)
    cosign.sign(c, signer.key, signer.password, [image], insecure=True)
    cosign.verify(c, team / "release.pub", image, insecure=True)


def test_another_key_and_an_unsigned_image_are_each_one_line(c, repository, tmp_path):
    key, public = Path(c.signing.key), Path(c.signing.public)
    cosign.keygen(c, key, public)
    cosign.keygen(c, tmp_path / "theirs.key", tmp_path / "theirs.pub")
    image = pushed_image(repository, "1.0", tmp_path)
    cosign.sign(c, key, PASSWORD, [image], insecure=True)
    cosign.attest(c, key, PASSWORD, image, signing.CYCLONEDX,
                  predicates(tmp_path)[signing.CYCLONEDX], insecure=True)  # fmt: skip
    theirs = tmp_path / "theirs.pub"
    with pytest.raises(cosign.Refused, match=r"^\S+@sha256:\w+: `cosign verify` with \S+theirs"
                       r".pub fails: no matching signatures: .*$"):  # fmt: skip
        cosign.verify(c, theirs, image, insecure=True)
    with pytest.raises(cosign.Refused, match=r"`cosign verify-attestation --type cyclonedx` "
                       r"with \S+theirs.pub fails: no matching attestations"):  # fmt: skip
        cosign.verify_attestation(c, theirs, image, signing.CYCLONEDX, insecure=True)
    other = pushed_image(repository, "2.0", tmp_path, system="other")
    with pytest.raises(cosign.Refused, match=r"fails: no signatures found$"):
        cosign.verify(c, public, other, insecure=True)


def test_a_key_that_cosign_did_not_make_ends_push_in_one_line(c, tmp_path):
    """An older `inv keygen` made its keys with openssl: push says to make a pair anew."""
    need(shutil.which("cosign") and shutil.which("openssl"), "no cosign, or no openssl")
    key = Path(c.signing.key)
    key.parent.mkdir()
    generate = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run([*generate, "-out", key], check=True, capture_output=True)
    with pytest.raises(Exit, match=r"^error: \S+cosign.key is not a key that cosign made "
                       r"\(-----BEGIN PRIVATE KEY-----\.\.\.\).* `inv keygen --force`, commit the "
                       r"new \S+cosign.pub, and push again\.$"):  # fmt: skip
        signing.signer(c)


def test_a_wrong_password_is_one_line(c, repository, tmp_path):
    key = Path(c.signing.key)
    cosign.keygen(c, key, Path(c.signing.public))
    image = pushed_image(repository, "1.0", tmp_path)
    with pytest.raises(Exit, match=r"^error: cosign cannot open \S+cosign.key with "
                       r"COSIGN_PASSWORD \(.*decryption failed\)\. Set the password that it was "
                       r"made with"):  # fmt: skip
        cosign.sign(c, key, "not it", [image], insecure=True)


def test_no_cosign_says_how_to_get_it_in_one_line(c):
    c.config.signing.cosign = "no-such-cosign"
    with pytest.raises(Exit, match=r"^error: there is no cosign `no-such-cosign` here "
                       r"\(signing.cosign\).*`apt-get install cosign`.*INVOKE_SIGNING_COSIGN at "
                       r"one\.$"):  # fmt: skip
        cosign.binary(c)


def test_no_password_and_no_terminal_is_one_line(c, monkeypatch):
    """cosign would fail on its own, with `inappropriate ioctl for device`."""
    monkeypatch.delenv("COSIGN_PASSWORD")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(Exit, match=r"^error: cosign asks for the new key's password, and there "
                       r"is no terminal to ask it on\. Set COSIGN_PASSWORD"):  # fmt: skip
        cosign.keygen(c, Path(c.signing.key), Path(c.signing.public))
    with pytest.raises(Exit, match=r"^error: \S+ needs the key's password, and there is no "
                       r"terminal to ask it on\. Set COSIGN_PASSWORD \(empty"):  # fmt: skip
        cosign.password(c.signing.key)


def test_a_registry_that_does_not_answer_is_one_line():
    # A port held bound, never listening: a free one may be the very port that the client's
    # connection leaves from, and then it connects to itself (TCP simultaneous open).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        down = oci.Repository(f"127.0.0.1:{held.getsockname()[1]}/team/app", insecure=True)
        with pytest.raises(oci.RegistryError, match=r"does not answer"):
            down.manifest("1.0")
