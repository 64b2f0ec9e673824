"""The provenance of an image as built: a SLSA v1 predicate, written beside its SBOM, which
`inv push` signs and attests in the registry.

It says who made the image (these tasks, at this commit), from what (the commit, the hashes of
poetry.lock and requirements.txt, the base images by ID, each Debian package that the runtime
carries, with its version, as the SBOM lists it, and each that the build installed beyond its
bases, which does not ship), and how (the build's parameters: the settings a person chose,
and, as the builder's own, each Debian package that it found a module to open by name, with
the module and the library that asked for it: the build's FOUND_PACKAGES argument). Nothing
in it is of the machine or the hour: two builds of
one commit write the same one.
"""

import hashlib
import json
import tempfile
import urllib.parse
from pathlib import Path

from invoke import Context

from shipyard.tooling import engine, stamps
from shipyard.tooling.project import NAME, PROJECT

# The stages that install packages for the build alone (docker/apt-install's APT_RECORD).
INSTALLING = {"sdists", "builder"}

# The build arguments that are parameters a person chose; the rest are the labels' and the
# bases' (resolved dependencies, below).
PARAMETERS = ("PYTHON_VERSION", "RUNTIME", "BUILD_PACKAGES", "RUNTIME_PACKAGES",
              "HOST_LIBRARIES", "STRIP", "BUILDER_PLATFORM", "SDISTS")  # fmt: skip


def path(sbom_path: Path) -> Path:
    """Where the provenance of the image whose SBOM is at SBOM_PATH goes: beside it."""
    return sbom_path.with_name(sbom_path.name.replace(".cdx.json", ".provenance.json"))


def write(
    c: Context,
    sbom: Path,
    platform: str,
    build_args: dict,
    built: list[str],
    found: list[dict] | None = None,
) -> None:
    """Write the provenance of the image built for PLATFORM with BUILD_ARGS, whose SBOM is
    at SBOM, beside it. BUILT: the package URLs of what the build installed (build_packages).
    FOUND: the packages that the build carries for what modules open by name (opened.py)."""
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
        *({"uri": purl, "annotations": {"use": "runtime"}} for purl in debian_packages(sbom)),
        *({"uri": purl, "annotations": {"use": "build"}} for purl in built),
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
            "internalParameters": {
                "runtimePackagesFound": list(found or []),
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": f"{source}/blob/{commit}/tasks.py#build"},
            "metadata": {"invocationId": f"{NAME}:{commit}:{platform}"},
        },
    }
    if not c.config.run.dry:
        stamps.replace(path(sbom), json.dumps(predicate, indent=1, sort_keys=True) + "\n")


def commit(predicate: dict) -> str | None:
    """The commit that the provenance PREDICATE says the image was built from."""
    source = predicate.get("buildDefinition", {}).get("externalParameters", {}).get("source", {})
    return source.get("digest", {}).get("gitCommit")


def build_packages(c: Context, argv: list[str], log: str, sbom: Path) -> list[str]:
    """The package URLs of what the build (`docker build ARGV`, whose BuildKit LOG is given)
    installed beyond its bases: read out of its build-packages stage where a stage that
    installs them ran, or where the provenance beside SBOM lacks them; else as it lists them."""
    written = path(sbom)
    listed = json.loads(written.read_text()) if written.is_file() else {}
    dependencies = listed.get("buildDefinition", {}).get("resolvedDependencies", [])
    if listed and not engine.stages_ran(log) & INSTALLING:
        return [item["uri"] for item in dependencies
                if item.get("annotations", {}).get("use") == "build"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-build-packages-") as folder:
        output = ["--target", "build-packages", "--output", f"type=local,dest={folder}"]
        engine.build(c, [*argv, *output], hide=True)
        record = Path(folder) / "packages"
        lines = record.read_text().split() if record.is_file() else []  # none under --dry
    return sorted({purl(line) for line in lines})


def purl(line: str) -> str:
    """The package URL of a NAME:ARCH=VERSION line, as syft writes a Debian package's."""
    package, _, version = line.partition("=")
    name, _, arch = package.partition(":")
    return f"pkg:deb/debian/{name}@{urllib.parse.quote(version, safe='~')}?arch={arch}"


def debian_packages(sbom: Path) -> list[str]:
    """The package URL of each Debian package that the SBOM lists (NAME@VERSION, sorted)."""
    if not sbom.is_file():
        return []
    components = json.loads(sbom.read_text()).get("components", [])
    return sorted({component["purl"] for component in components
                   if component.get("purl", "").startswith("pkg:deb/")})  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
