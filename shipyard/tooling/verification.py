"""`inv verify`: a pushed image, checked against its source.

For the image that REF names (each platform's, where REF is a manifest list, whose own
signature is checked first), in turn:
1. its signature holds for the public key (signing.public), and names this very digest;
2. its SBOM and provenance are attested, signed by the same key, of this very digest; the
   SBOM describes the image whose config the manifest names;
3. the provenance says it was built from the commit asked for;
4. with --rebuild, that commit, checked out in a temporary tree and built there by its own
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

from shipyard.tooling import engine, oci, platforms, provenance, registry, sbom, signing
from shipyard.tooling.project import NAME, ROOT, VENV


def check(c: Context, ref: str, commit: str, rebuild: bool) -> None:
    start = time.monotonic()
    public = Path(c.signing.public)
    if not public.is_file():
        raise Exit(f"error: there is no public key at {public} (signing.public). Get the one "
                   "that signed the release, or make a pair with `inv keygen`.")  # fmt: skip
    name, reference = split(ref)
    repository = oci.Repository(name, registry.insecure_registry(c, name))
    try:
        images = _images(repository, reference, public)
        built = {}
        for platform, (digest, config) in images.items():
            predicates = signing.verify(repository, digest, public)
            _attested(predicates, f"{name}@{digest}", config, commit)
            built[platform] = config
            print(f"ok: {name}@{digest} ({platform}): signed, its SBOM and provenance attested, "
                  f"built from {commit[:12]}")  # fmt: skip
    except signing.Unverified as error:
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


def _images(repository: oci.Repository, reference: str, public: Path) -> dict[str, tuple[str, str]]:
    """The images that REFERENCE names: each platform's manifest digest and config digest.
    A list's own signature is checked first."""
    found = repository.manifest(reference)
    if found is None:
        raise signing.Unverified(f"{repository.name}: the registry has no {reference}")
    body, kind, digest = found
    document = json.loads(body)
    if kind in oci.LISTS or document.get("mediaType") in oci.LISTS:
        signing.verify_signature(repository, digest, public)
        images = {}
        for entry in document["manifests"]:
            where = entry.get("platform", {})
            manifest = repository.manifest(entry["digest"])
            config = json.loads(manifest[0])["config"]["digest"] if manifest else ""
            images[f"{where.get('os')}/{where.get('architecture')}"] = (entry["digest"], config)
        return images
    config = document["config"]["digest"]
    described = json.loads(repository.blob(config))
    return {f"{described.get('os')}/{described.get('architecture')}": (digest, config)}


def _attested(predicates: dict, where: str, config: str, commit: str) -> None:
    """Check what PREDICATES say of the image WHERE, whose config has the digest CONFIG."""
    for kind in (signing.CYCLONEDX, signing.SLSA):
        if kind not in predicates:
            raise signing.Unverified(f"{where}: no attestation of type {kind}")
    described = sbom.image_of(predicates[signing.CYCLONEDX])
    if described != config:
        raise signing.Unverified(f"{where}: the SBOM describes another image ({described})")
    made = provenance.commit(predicates[signing.SLSA])
    if made != commit:
        raise signing.Unverified(f"{where}: its provenance says it was built from {made}, "
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
