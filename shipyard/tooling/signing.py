"""What `inv push` signs, and with which predicates: each pushed image by its digest, with
signed attestations of its SBOM (CycloneDX) and its provenance (SLSA v1); and, for several
platforms, the manifest list too. cosign does the signing (tooling/cosign.py), with the key
that `inv keygen` made, or one that a team made with cosign; `inv verify` and cosign's own
commands read what it writes (README: "Verifying a release").
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling import cosign, engine, platforms, provenance, registry, sbom
from shipyard.tooling.project import VERSION

# The predicate types, as cosign's --type takes them. The provenance goes by its URI: under
# the short name (slsaprovenance1), cosign rewrites it into the fields that it knows, and
# drops the others. cosign finds it by either.
CYCLONEDX = "cyclonedx"
SLSA = "https://slsa.dev/provenance/v1"


@dataclass
class Signer:
    """The private key, and the password that cosign opens it with."""

    key: Path
    password: str


def signer(c: Context) -> Signer | None:
    """The key that push signs with, checked before anything is pushed; None, said as a
    warning, where there is no key (the release goes unsigned)."""
    key, public = Path(c.signing.key), Path(c.signing.public)
    if c.config.run.dry:
        return None
    if not key.is_file():
        print(f"warning: not signed: there is no key at {key} (signing.key). `inv keygen` makes "
              "a pair; `push` then signs, and `inv verify` checks.")  # fmt: skip
        return None
    cosign.binary(c)
    cosign.require_key(key, public)
    return Signer(key, cosign.password(str(key)))


def release(c: Context, signer: Signer | None, repository: str, sources: dict, digests: dict,
            listed: str | None) -> None:  # fmt: skip
    """Sign each pushed image of SOURCES (by platform) at its DIGESTS, and the list LISTED
    where there is one; attest each image's SBOM and provenance beside it."""
    if signer is None:
        return
    start = time.monotonic()
    predicates = {}
    for platform, source in sources.items():
        written = sbom.path(c, platforms.tag(c, platform, VERSION))
        if sbom.image_of(json.loads(written.read_text())) != engine.image_id(c, source):
            raise Exit(f"error: {written} is not the SBOM of {source}. Run `inv build`, then "
                       "push again.")  # fmt: skip
        predicates[platform] = {CYCLONEDX: written, SLSA: provenance.path(written)}
    insecure = registry.insecure_registry(c, repository)
    images = {platform: f"{repository}@{digest}" for platform, digest in digests.items()}
    signed = [f"{repository}@{listed}"] if listed else []

    def attest(platform: str) -> None:  # one image's, in turn: each rewrites its .att tag
        for kind, predicate in predicates[platform].items():
            cosign.attest(c, signer.key, signer.password, images[platform], kind, predicate,
                          insecure)  # fmt: skip

    # cosign spends most of its time opening the key: the images' chains run side by side.
    with ThreadPoolExecutor() as pool:
        jobs = [pool.submit(cosign.sign, c, signer.key, signer.password,
                            [*signed, *images.values()], insecure)]  # fmt: skip
        jobs += [pool.submit(attest, platform) for platform in images]
        for job in jobs:
            job.result()
    print(f"signed with {signer.key} by cosign, each image's SBOM and provenance attested beside "
          f"it, in {time.monotonic() - start:.1f} s: `inv verify` checks them")  # fmt: skip
