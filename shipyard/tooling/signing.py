"""Evidence beside a pushed image, in cosign's layout: a signature, and signed attestations of
its SBOM and its provenance (release(), at the end of `inv push`), and their check (verify(),
for `inv verify`). `cosign verify` and `cosign verify-attestation` read the same.

For an image whose manifest has the digest sha256:HEX, the repository gets two more tags:
- sha256-HEX.sig: a manifest whose layer is the simple-signing payload (the repository and
  the digest), its signature in the annotation dev.cosignproject.cosign/signature;
- sha256-HEX.att: a manifest whose layers are DSSE envelopes of in-toto statements about that
  digest, one for the CycloneDX SBOM, one for the SLSA v1 provenance, each with its
  predicateType annotation.
This is what cosign writes, and reads, where a registry has no referrers API (Debian's
docker-registry). The key is ECDSA P-256, made and used by openssl, as cosign's are: the
private key stays on this machine (never in a build); COSIGN_PASSWORD, where set, encrypts
it, as cosign's own variable does. cosign checks a transparency log unless told not to; a
private registry has none (README: "Verifying a release").
"""

import base64
import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling import engine, oci, platforms, provenance, registry, sbom
from shipyard.tooling.project import VERSION

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGNATURE = "dev.cosignproject.cosign/signature"
CYCLONEDX = "https://cyclonedx.org/bom"
SLSA = "https://slsa.dev/provenance/v1"


class Unverified(Exception):
    """What did not match, and where: one line."""


def keygen(c: Context, key: Path, public: Path) -> None:
    """Make an ECDSA P-256 key pair: KEY (private, 0600), and PUBLIC, which verifiers get."""
    key.parent.mkdir(parents=True, exist_ok=True)
    encrypt = ["-aes256", *_password("pass")] if os.environ.get("COSIGN_PASSWORD") else []
    generate = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    previous = os.umask(0o077)  # the private key is its owner's alone, from its first byte
    try:
        c.run(shlex.join([*generate, *encrypt, "-out", str(key)]), hide=True, in_stream=False)
    finally:
        os.umask(previous)
    public_of = ["openssl", "pkey", "-in", str(key), *_password("passin"), "-pubout"]
    c.run(shlex.join([*public_of, "-out", str(public)]), hide=True, in_stream=False)


def _password(flag: str) -> list[str]:
    return [f"-{flag}", "env:COSIGN_PASSWORD"] if os.environ.get("COSIGN_PASSWORD") else []


def sign(key: Path, data: bytes) -> str:
    """DATA's ECDSA signature over its SHA-256 by KEY, DER, in base64: cosign's form."""
    signed = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key), *_password("passin")],
        input=data, capture_output=True, check=False,
    )  # fmt: skip
    if signed.returncode:
        reason = signed.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise Exit(f"error: openssl cannot sign with {key} ({' '.join(reason)}). "
                   "Check signing.key, or make a key pair with `inv keygen`.")  # fmt: skip
    return base64.b64encode(signed.stdout).decode()


def verifies(public: Path, data: bytes, signature: str) -> bool:
    """Whether SIGNATURE (base64) is PUBLIC's key's signature of DATA."""
    with tempfile.NamedTemporaryFile() as file:
        try:
            file.write(base64.b64decode(signature, validate=True))
        except ValueError:
            return False
        file.flush()
        checked = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", file.name],
            input=data, capture_output=True, check=False,
        )  # fmt: skip
    return checked.returncode == 0


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signature signs."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def statement(repository: str, image: str, predicate_type: str, predicate: dict) -> dict:
    """An in-toto statement (v1) that PREDICATE holds of the image REPOSITORY@IMAGE."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": repository, "digest": {"sha256": image.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def tag(image: str, kind: str) -> str:
    """cosign's tag for the evidence of IMAGE (a digest): sha256-HEX.sig, sha256-HEX.att."""
    return f"{image.replace(':', '-')}.{kind}"


@dataclass
class Pushed:
    """What went to the registry beside one image: tags, and their bytes."""

    tags: list[str] = field(default_factory=list)
    size: int = 0


def push(repository: oci.Repository, image: str, key: Path, predicates: dict[str, dict]) -> Pushed:
    """Sign IMAGE (a digest of REPOSITORY), and push that signature and a signed attestation
    of each of PREDICATES (by predicate type) under cosign's tags."""
    pushed = Pushed()
    payload = oci.encoded({
        "critical": {
            "identity": {"docker-reference": repository.name},
            "image": {"docker-manifest-digest": image},
            "type": "cosign container image signature",
        },
        "optional": None,
    })  # fmt: skip
    signature = [(payload, SIMPLE_SIGNING, {SIGNATURE: sign(key, payload)})]
    attestations = []
    for kind, predicate in predicates.items():
        body = oci.encoded(statement(repository.name, image, kind, predicate))
        envelope = {
            "payloadType": IN_TOTO,
            "payload": base64.b64encode(body).decode(),
            "signatures": [{"keyid": "", "sig": sign(key, pae(IN_TOTO, body))}],
        }
        attestations.append((oci.encoded(envelope), DSSE, {"predicateType": kind}))
    for kind, layers in (("sig", signature), ("att", attestations)):
        if layers:  # a manifest list is signed, and attests nothing of its own
            pushed.size += _put(repository, tag(image, kind), layers)
            pushed.tags.append(tag(image, kind))
    return pushed


def _put(repository: oci.Repository, reference: str, layers: list[tuple]) -> int:
    """Push an artifact of LAYERS (bytes, media type, annotations) under REFERENCE; its size."""
    described = []
    for data, kind, annotations in layers:
        blob = repository.put_blob(data)
        described.append(
            {"mediaType": kind, "size": len(data), "digest": blob, "annotations": annotations}
        )
    config = oci.encoded({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in described]},
    })  # fmt: skip
    manifest = oci.encoded({
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                   "digest": repository.put_blob(config)},
        "layers": described,
    })  # fmt: skip
    repository.put_manifest(reference, manifest, oci.OCI_MANIFEST)
    return len(manifest) + len(config) + sum(len(data) for data, _, _ in layers)


def verify_signature(repository: oci.Repository, image: str, public: Path) -> None:
    """Check IMAGE's signature with PUBLIC; raise Unverified, with one line, if none holds."""
    where = f"{repository.name}@{image}"
    signature = _layers(repository, tag(image, "sig"), where, "signature")
    if not any(
        verifies(public, data, layer.get("annotations", {}).get(SIGNATURE, ""))
        and json.loads(data)["critical"]["image"]["docker-manifest-digest"] == image  # signed
        for layer, data in signature
    ):
        raise Unverified(f"{where}: no signature of this digest verifies with {public}")


def verify(repository: oci.Repository, image: str, public: Path) -> dict[str, dict]:
    """Check IMAGE's signature and attestations with PUBLIC; the attested predicates, by type.
    Raise Unverified, with one line, at the first thing that does not match."""
    where = f"{repository.name}@{image}"
    verify_signature(repository, image, public)
    predicates = {}
    for layer, data in _layers(repository, tag(image, "att"), where, "attestation"):
        kind = layer.get("annotations", {}).get("predicateType", "?")
        try:
            envelope = json.loads(data)
            body = base64.b64decode(envelope["payload"])
            signed = any(verifies(public, pae(envelope["payloadType"], body), item["sig"])
                         for item in envelope["signatures"])  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise Unverified(f"{where}: the {kind} attestation is not a DSSE envelope") from None
        if not signed:
            raise Unverified(f"{where}: the {kind} attestation does not verify with {public}")
        said = json.loads(body)  # signed by the key: as it was made
        subjects = [subject["digest"].get("sha256") for subject in said["subject"]]
        if image.removeprefix("sha256:") not in subjects:
            raise Unverified(f"{where}: the {kind} attestation is of another image")
        predicates[said["predicateType"]] = said["predicate"]
    return predicates


def _layers(
    repository: oci.Repository, reference: str, where: str, what: str
) -> list[tuple[dict, bytes]]:
    """Each layer of the artifact REFERENCE, with its bytes."""
    found = repository.manifest(reference)
    if found is None:
        raise Unverified(f"{where}: the registry has no {what} ({reference})")
    layers = json.loads(found[0])["layers"]
    return [(layer, repository.blob(layer["digest"])) for layer in layers]


def release(c: Context, repository: str, sources: dict, digests: dict, listed: str | None) -> None:
    """Sign each pushed image of SOURCES (by platform) at its digest, and attest its SBOM and
    provenance beside it, in cosign's layout; and sign the list LISTED, where there is one."""
    key = Path(c.signing.key)
    if c.config.run.dry:
        return
    if not key.is_file():
        print(f"warning: not signed: there is no key at {key} (signing.key). `inv keygen` makes "
              "a pair; `push` then signs, and `inv verify` checks.")  # fmt: skip
        return
    repo = oci.Repository(repository, registry.insecure_registry(c, repository))
    size = 0
    try:
        for platform, digest in digests.items():
            written = sbom.path(c, platforms.tag(c, platform, VERSION))
            document = json.loads(written.read_text())
            if sbom.image_of(document) != engine.image_id(c, sources[platform]):
                raise Exit(f"error: {written} is not the SBOM of {sources[platform]}. "
                           "Run `inv build`, then push again.")  # fmt: skip
            made = provenance.path(written)
            predicates = {CYCLONEDX: document, SLSA: json.loads(made.read_text())}
            size += push(repo, digest, key, predicates).size
        if listed:
            size += push(repo, listed, key, {}).size
    except oci.RegistryError as error:
        fix = "The image is pushed; its evidence is not. Push again."
        raise Exit(f"error: {error}. {fix}") from None
    print(f"signed with {key}, with the SBOM and provenance of each platform attested "
          f"({size / 1e3:.0f} kB beside the image): `inv verify` checks them")  # fmt: skip
