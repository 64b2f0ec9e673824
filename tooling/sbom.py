"""The SBOM of an image as built: syft reads the image itself, and every file gets its owner.

syft finds the packages: Debian's, from the dpkg records that the distroless tree carries
(or the base's own database), Python's, from the venv's dist-info, and an interpreter built
into a prefix, from the binary itself. It says which files a Debian package holds; this
module adds the rest, so that each file of the image is named under the component it
belongs to (CycloneDX evidence.occurrences): a Python package's files and their bytecode,
the prefix's interpreter and standard library, and, under the root component (the image
itself), the app and what the build made. An ELF file that nothing owns is listed, as such,
under the property my-project:unattributed.
"""

import json
import os
import re
import shlex
import tempfile
import uuid
from pathlib import Path, PurePosixPath

from invoke import Context

from tooling import engine, stamps
from tooling.commands import ok
from tooling.project import NAME, VENV, VERSION

# What syft's file catalog calls an ELF file.
ELF = {"application/x-sharedlib", "application/x-executable", "application/x-pie-executable",
       "application/x-object"}  # fmt: skip
# An interpreter that syft recognised by its binary, in a prefix of its own (/usr/local).
PREFIX = re.compile(r"^(.*)/bin/python(\d+\.\d+)$")
# Bytecode that compileall wrote beside a module: DIR/__pycache__/NAME.cpython-313.pyc.
BYTECODE = re.compile(r"^(.*)/__pycache__/([^/.]+)\.[^/]+\.pyc$")


def path(c: Context, tag: str = VERSION) -> Path:
    """Where the SBOM of the image TAG goes: dist/IMAGE-TAG.cdx.json."""
    return Path("dist") / f"{c.docker.image}-{tag}.cdx.json"


def image_of(document: dict) -> str | None:
    """The ID of the image that the SBOM DOCUMENT describes (what attribute() wrote in it)."""
    properties = document.get("metadata", {}).get("component", {}).get("properties", [])
    return {item.get("name"): item.get("value") for item in properties}.get(f"{NAME}:image:id")


def write(c: Context, ref: str, target: Path) -> None:
    """Write the CycloneDX SBOM of the image REF to TARGET, unless it is there already."""
    image = json.loads(engine.probe(c, "image", "inspect", ref).stdout or "[{}]")[0]
    if c.config.run.dry or (target.is_file() and stamps.done(f"sbom-{target.name}", image["Id"])):
        print(f"SBOM: {target}")
        return
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-sbom-") as folder:
        archive = Path(folder) / "image.tar"
        ok(
            engine.docker(c, "save", "--output", str(archive), ref, hide=True, warn=True),
            what=f"docker save {ref}",
            fix="See the error above.",
        )
        argv = [str(VENV / "bin" / "syft"), "scan", f"docker-archive:{archive}", "--quiet"]
        argv += ["-o", f"cyclonedx-json={folder}/cdx.json", "-o", f"syft-json={folder}/syft.json"]
        env = {"SYFT_CHECK_FOR_APP_UPDATE": "false", "SYFT_FILE_METADATA_SELECTION": "all"}
        ok(
            c.run(shlex.join(argv), env=env, hide=True, warn=True),
            what="syft",
            fix="Run `inv install`, then build again.",
        )
        cyclonedx = json.loads((Path(folder) / "cdx.json").read_text())
        found = json.loads((Path(folder) / "syft.json").read_text())
    document, unattributed = attribute(cyclonedx, found, image)
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(document, indent=1) + "\n")
    stamps.record(c, f"sbom-{target.name}", image["Id"])
    packages = len(document["components"])
    print(f"SBOM: {target}: {packages} components, {unattributed} ELF files unattributed")


def attribute(cyclonedx: dict, found: dict, image: dict) -> tuple[dict, int]:
    """CYCLONEDX, with the image as its root component and every file under its owner.

    FOUND is syft's own output for the same image, which lists the files and what Debian's
    packages hold of them; IMAGE is what `docker image inspect` says of it.
    """
    files = {entry["location"]["path"]: entry.get("metadata", {}) for entry in found["files"]}
    regular = {path for path, meta in files.items() if meta.get("type") == "RegularFile"}
    ids = {entry["id"]: entry["location"]["path"] for entry in found["files"]}
    owners: dict[str, str] = {}  # a file's path: the syft id of the package that holds it
    for relation in found["artifactRelationships"]:
        if relation["type"] == "contains" and relation["child"] in ids:
            owners.setdefault(ids[relation["child"]], relation["parent"])
    bytecode: dict[str, list[str]] = {}  # a module's source: the bytecode compiled from it
    for path in regular:
        if compiled := BYTECODE.match(path):
            bytecode.setdefault(f"{compiled[1]}/{compiled[2]}.py", []).append(path)
    for package in found["artifacts"]:
        for owned in _held(package, regular, bytecode):
            owners.setdefault(owned, package["id"])
    components = {_syft_id(component): component for component in cyclonedx["components"]}
    root = cyclonedx["metadata"]["component"]
    occurrences: dict[str, list[str]] = {}
    unattributed = []
    for path in sorted(regular):
        owner = owners.get(path)
        if owner in components:
            occurrences.setdefault(owner, []).append(path)
        elif files[path].get("mimeType") in ELF:
            unattributed.append(path)
        else:  # the app, and what the build made: the image's own
            occurrences.setdefault("", []).append(path)
    for owner, paths in occurrences.items():
        component = components.get(owner, root)
        component["evidence"] = {"occurrences": [{"location": path} for path in paths]}
    digest = image["Id"].partition(":")[2]
    labels = image.get("Config", {}).get("Labels") or {}
    root.update(name=NAME, version=VERSION, type="container")
    root["hashes"] = [{"alg": "SHA-256", "content": digest}]
    root["properties"] = [
        {"name": f"{NAME}:image:id", "value": image["Id"]},
        {"name": f"{NAME}:image:platform", "value": f"{image['Os']}/{image['Architecture']}"},
        *({"name": f"{NAME}:unattributed", "value": path} for path in unattributed),
    ]
    cyclonedx["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, image['Id'])}"
    cyclonedx["metadata"]["timestamp"] = labels.get("org.opencontainers.image.created", "")
    return cyclonedx, len(unattributed)


def _syft_id(component: dict) -> str:
    found = re.search(r"package-id=([0-9a-f]+)", component.get("bom-ref", ""))
    return found[1] if found else component.get("bom-ref", "")


def _held(package: dict, regular: set[str], bytecode: dict[str, list[str]]) -> list[str]:
    """The files that PACKAGE holds but syft does not say so: a Python package's (its RECORD,
    and the bytecode compiled from it), a prefix's interpreter and standard library, and the
    package's own records (dpkg's status.d, dist-info)."""
    held = [location["path"] for location in package.get("locations", [])]
    metadata = package.get("metadata") or {}
    if package["type"] == "python" and metadata.get("sitePackagesRootPath"):
        root = PurePosixPath(metadata["sitePackagesRootPath"])
        for entry in metadata.get("files") or []:
            listed = os.path.normpath(root / entry["path"])
            held += [listed, *bytecode.get(listed, [])]
    for location in package.get("locations", []):
        prefix = PREFIX.match(location["path"]) if package["type"] == "binary" else None
        if prefix and not prefix[1].startswith("/usr/bin"):
            base, version = prefix[1], prefix[2]
            held += [path for path in regular if path.startswith(_installed(base, version))]
    return [path for path in held if path in regular]


def _installed(prefix: str, version: str) -> tuple[str, ...]:
    """Where `make install` of CPython VERSION puts its files under PREFIX."""
    return (
        f"{prefix}/bin/",
        f"{prefix}/lib/python{version}/",
        f"{prefix}/lib/libpython3",  # libpython3.13.so.1.0, and libpython3.so, the stable ABI's
        f"{prefix}/lib/pkgconfig/python",
        f"{prefix}/include/python{version}/",
        f"{prefix}/share/man/man1/python",
    )
