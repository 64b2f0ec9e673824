"""`inv verify`: a pushed image, checked against its source.

cosign checks what it can: REF's signature (where REF is a manifest list, the list's own
first), then each platform's image by its digest, in turn: its signature, and its SBOM and
provenance attestations, signed by the same key (signing.public) and made of this very
digest. What cosign cannot know is checked here, in the statements that it verified:
1. the SBOM describes the image whose config the manifest names;
2. the provenance says it was built from the commit asked for;
3. with --rebuild, that commit, checked out in a temporary tree and built there by its own
   tasks, gives the very same image (its config's digest: its ID).
The first thing that does not match ends it, in one line that says what and where.
"""

import json
import shlex
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from invoke import Context, Exit

from shipyard.tooling import cosign, engine, oci, platforms, provenance, registry, sbom, signing
from shipyard.tooling.project import NAME, ROOT, VENV


class Unverified(Exception):
    """What did not match, and where: one line."""


def check(c: Context, ref: str, commit: str, rebuild: bool) -> None:
    start = time.monotonic()
    public = Path(c.signing.public)
    if not public.is_file():
        raise Exit(f"error: there is no public key at {public} (signing.public). Get the one "
                   "that signed the release, or make a pair with `inv keygen`.")  # fmt: skip
    cosign.binary(c)
    name, reference = split(ref)
    insecure = registry.insecure_registry(c, name)
    repository = oci.Repository(name, insecure)
    try:
        listed, images = _images(repository, reference)
        if listed:  # the list's own signature: cosign's check of a list stops there
            cosign.verify(c, public, f"{name}@{listed}", insecure)
        built = {}
        for platform, (digest, config) in images.items():
            image = f"{name}@{digest}"
            cosign.verify(c, public, image, insecure)
            boms, made = (cosign.verify_attestation(c, public, image, kind, insecure)
                          for kind in (signing.CYCLONEDX, signing.SLSA))  # fmt: skip
            _attested(boms, made, image, config, commit)
            built[platform] = config
            print(f"ok: {image} ({platform}): signed, its SBOM and provenance attested (cosign), "
                  f"built from {commit[:12]}")  # fmt: skip
    except (cosign.Refused, Unverified) as error:
        raise Exit(f"error: {error}.") from None
    except oci.RegistryError as error:
        raise Exit(f"error: {error}. Check REF, and that the registry is up.") from None
    if rebuild:
        rebuilt = _rebuild(c, commit, list(built))
        for platform, config in built.items():
            if rebuilt.get(platform) != config:
                here = rebuilt.get(platform)
                raise Exit(f"error: {name} ({platform}) is {config}, and {commit[:12]} builds "
                           f"{here} here: not the image that its source gives.")  # fmt: skip
            print(f"ok: {commit[:12]} builds the very same image for {platform} ({config[:19]})")
    print(f"verified {ref} in {time.monotonic() - start:.1f} s")


def split(ref: str) -> tuple[str, str]:
    """REF's repository, and its tag or digest: host/team/app:1.0 -> host/team/app, 1.0."""
    if "@" in ref:
        name, _, digest = ref.partition("@")
        return name, digest
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # host:port/team/app, with no tag
        return ref, "latest"
    return name, tag


def _images(repository: oci.Repository, reference: str) -> tuple[str | None, dict]:
    """The list's digest where REFERENCE names one (else None), and the images that it names:
    each platform's manifest digest and config digest."""
    found = repository.manifest(reference)
    if found is None:
        raise Unverified(f"{repository.name}: the registry has no {reference}")
    body, kind, digest = found
    document = json.loads(body)
    if kind in oci.LISTS or document.get("mediaType") in oci.LISTS:
        images = {}
        for entry in document["manifests"]:
            where = entry.get("platform", {})
            manifest = repository.manifest(entry["digest"])
            config = json.loads(manifest[0])["config"]["digest"] if manifest else ""
            images[f"{where.get('os')}/{where.get('architecture')}"] = (entry["digest"], config)
        return digest, images
    config = document["config"]["digest"]
    described = json.loads(repository.blob(config))
    return None, {f"{described.get('os')}/{described.get('architecture')}": (digest, config)}


def _attested(boms: list, made: list, image: str, config: str, commit: str) -> None:
    """Check what the verified statements BOMS (SBOMs) and MADE (provenances) say of IMAGE,
    whose config has the digest CONFIG: each of them, where a type has several."""
    for statement in boms:
        described = sbom.image_of(statement["predicate"])
        if described != config:
            raise Unverified(f"{image}: the SBOM describes another image ({described})")
    for statement in made:
        said = provenance.commit(statement["predicate"])
        if said != commit:
            raise Unverified(f"{image}: its provenance says it was built from {said}, "
                             f"not {commit}")  # fmt: skip


def _rebuild(c: Context, commit: str, wanted: list[str]) -> dict[str, str]:
    """Build COMMIT, in a temporary tree, by its own tasks, for the platforms WANTED; each
    platform's image ID. Where its lock is the one installed here, it shares .venv."""
    image = f"{NAME}-verify"
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-verify-") as folder:
        tree = Path(folder) / "tree"
        c.run(shlex.join(["git", "clone", "--quiet", str(ROOT), str(tree)]), hide=True)
        c.run(shlex.join(["git", "-C", str(tree), "checkout", "--quiet", commit]), hide=True)
        if (tree / "poetry.lock").read_bytes() == (ROOT / "poetry.lock").read_bytes():
            (tree / ".venv").symlink_to(VENV)
        version = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["version"]
        env = {"INVOKE_DOCKER_IMAGE": image, "INVOKE_DOCKER_PLATFORMS": ",".join(wanted)}
        print(f"rebuilding {commit[:12]} in {tree}, as {image}")
        # With its import check: that is what finds the packages of the libraries that modules
        # open by name, which the image carries (kept in .venv, where it is shared).
        argv = [sys.executable, "-m", "invoke", "build"]
        with c.cd(str(tree)):
            built = c.run(shlex.join(argv), env=env, hide=True, warn=True)
        if built.failed:
            sys.stderr.write(built.stdout[-3000:] + built.stderr[-3000:])
            raise Exit(f"error: {commit[:12]} does not build here (see above): nothing to compare.")
    refs = {platform: f"{image}:{platforms.tag(c, platform, version)}" for platform in wanted}
    rebuilt = {platform: engine.image_id(c, ref) or "" for platform, ref in refs.items()}
    # Compared: the names go (an image that another name holds stays, under that one).
    engine.docker(c, "image", "rm", *refs.values(), f"{image}:latest", hide=True, warn=True)
    return rebuilt
