"""The provenance of an image as built: a SLSA v1 predicate, written beside its SBOM, which
`inv push` signs and attests in the registry.

It says who made the image (these tasks, at this commit), from what (the commit, the hashes of
poetry.lock and requirements.txt, the base images by ID, and each Debian package that the
runtime carries, with its version, as the SBOM lists it), and how (the build's parameters).
Nothing in it is of the machine or the hour: two builds of one commit write the same one.
"""

import hashlib
import json
from pathlib import Path

from invoke import Context

from tooling import engine
from tooling.project import NAME, PROJECT

# The build arguments that are parameters a person chose; the rest are the labels' and the
# bases' (resolved dependencies, below).
PARAMETERS = ("PYTHON_VERSION", "RUNTIME", "BUILD_PACKAGES", "RUNTIME_PACKAGES",
              "HOST_LIBRARIES", "STRIP", "BUILDER_PLATFORM", "SDISTS")  # fmt: skip


def path(sbom_path: Path) -> Path:
    """Where the provenance of the image whose SBOM is at SBOM_PATH goes: beside it."""
    return sbom_path.with_name(sbom_path.name.replace(".cdx.json", ".provenance.json"))


def write(c: Context, sbom: Path, platform: str, build_args: dict) -> None:
    """Write the provenance of the image built for PLATFORM with BUILD_ARGS, whose SBOM is
    at SBOM, beside it."""
    source = PROJECT.get("urls", {}).get("Source", "unknown")
    commit = build_args.get("REVISION", "unknown")
    bases = dict.fromkeys([build_args["BASE_IMAGE"], build_args.get("BUILD_IMAGE")])
    dependencies = [
        {"uri": f"git+{source}", "digest": {"gitCommit": commit}},
        *({"name": name, "digest": {"sha256": _sha256(Path(name))}}
          for name in ("poetry.lock", "requirements.txt")),
        *({"uri": f"docker-image://{base}",
           "digest": {"sha256": (engine.image_id(c, base) or "").removeprefix("sha256:")}}
          for base in bases if base),
        *({"uri": purl} for purl in debian_packages(sbom)),
    ]  # fmt: skip
    predicate = {
        "buildDefinition": {
            "buildType": f"{source}/blob/{commit}/Dockerfile",  # this build, defined there
            "externalParameters": {
                "source": {"uri": f"git+{source}", "digest": {"gitCommit": commit}},
                "platform": platform,
                "target": "runtime",
                **{key: build_args[key] for key in PARAMETERS if key in build_args},
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": f"{source}/blob/{commit}/tasks.py#build"},
            "metadata": {"invocationId": f"{NAME}:{commit}:{platform}"},
        },
    }
    if not c.config.run.dry:
        path(sbom).write_text(json.dumps(predicate, indent=1, sort_keys=True) + "\n")


def commit(predicate: dict) -> str | None:
    """The commit that the provenance PREDICATE says the image was built from."""
    source = predicate.get("buildDefinition", {}).get("externalParameters", {}).get("source", {})
    return source.get("digest", {}).get("gitCommit")


def debian_packages(sbom: Path) -> list[str]:
    """The package URL of each Debian package that the SBOM lists (NAME@VERSION, sorted)."""
    if not sbom.is_file():
        return []
    components = json.loads(sbom.read_text()).get("components", [])
    return sorted({component["purl"] for component in components
                   if component.get("purl", "").startswith("pkg:deb/")})  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
