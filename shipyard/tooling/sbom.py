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
import time
import uuid
from pathlib import Path, PurePosixPath

from invoke import Context

from shipyard.tooling import engine, stamps
from shipyard.tooling.archive import Archive
from shipyard.tooling.commands import ok
from shipyard.tooling.project import NAME, VENV, VERSION

SYFT = VENV / "bin" / "syft"
# What syft last said of each image that has an SBOM in dist/, to read again only what changed.
SCANS = VENV / "scans"
FORMAT = 2  # of what is kept there: syft's whole account, and the layers' paths, folders marked

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


def write(c: Context, image: Archive, ref: str, target: Path, whole: bool = False) -> None:
    """Write to TARGET the CycloneDX SBOM of the image REF, unless it is there already. IMAGE
    is REF's archive, or that of the image that REF was written from, with the same layers.
    WHOLE scans the whole image, whatever was scanned before."""
    start = time.monotonic()
    inspected = engine.inspected(c, ref)
    step = f"sbom-{target.name}"
    if c.config.run.dry or (not whole and target.is_file() and stamps.done(step, inspected["Id"])):
        print(f"SBOM: {target}")
        return
    layers = inspected["RootFS"]["Layers"]
    last = SCANS / target.name
    if whole:
        last.unlink(missing_ok=True)
    found, read = scan(c, image, layers, last)
    document, unattributed = attribute(found["cyclonedx"], found["syft"], inspected)
    if not target.parent.is_dir():  # ours: git leaves it alone, whatever the project ignores
        target.parent.mkdir()
        (target.parent / ".gitignore").write_text("*\n")
    stamps.replace(target, json.dumps(document, indent=1) + "\n")
    stamps.record(c, step, inspected["Id"])
    packages = len(document["components"])
    print(
        f"SBOM: {target}: {packages} components, {unattributed} ELF files unattributed "
        f"(syft read {read} of {len(layers)} layers, {time.monotonic() - start:.1f} s)"
    )


def scan(c: Context, image: Archive, layers: list[str], last: Path) -> tuple[dict, int]:
    """What syft says of IMAGE, whose layers are LAYERS (their digests), as LAST keeps it, and
    how many layers it read to say so.

    LAST holds what syft said of the image that was scanned before. When the two share their
    lower layers, and what lies above them hides nothing of theirs and holds no package but
    those that stand in for the ones there before (the app's own, after an edit), syft reads
    only the layers above, and its word on the lower ones is kept: after an edit of the app,
    one small layer. Anything else is a scan of the whole image.
    """
    before = json.loads(last.read_text()) if last.is_file() else {}
    if before.get("syft-installed") != _syft_installed() or before.get("format") != FORMAT:
        before = {}  # another syft's word (it may say otherwise), or not all of it
    shared = 0  # how many lower layers the two images share
    for old, new in zip(before.get("layers", []), layers, strict=False):
        if old != new:
            break
        shared += 1
    found = _merged(c, image, before, layers, shared) if shared else None
    if found is None:
        paths = [image.paths(layer) for layer in range(len(layers))]
        found, shared = {"layers": layers, "paths": paths, **_syft(c, image.path)}, 0
    found["syft-installed"], found["format"] = _syft_installed(), FORMAT
    last.parent.mkdir(parents=True, exist_ok=True)
    stamps.replace(last, json.dumps(found))
    return found, len(layers) - shared


def _merged(c: Context, image: Archive, before: dict, layers: list, shared: int) -> dict | None:
    """BEFORE's scan with the layers above its SHARED lower ones scanned again as LAYERS has
    them; None where only a scan of the whole image can say what is there.

    A package above (the app's own, installed from its wheel) may stand in for one that was
    there before: the same name, version and requirements, which are all that syft's ties
    between packages (dependency-of) are made of. Its ties to the packages below are syft's
    own from before, carried over to its new ID; anything else above that is tied to what
    lies below calls for the whole scan."""
    paths = before["paths"][:shared] + [image.paths(layer) for layer in range(shared, len(layers))]
    lower = {path.rstrip("/") for listed in paths[:shared] for path in listed}
    above = [*paths[shared:], *before["paths"][shared:]]  # what is there now, and was there
    if any(_hidden(path) & lower for listed in above for path in listed if path[-1] != "/"):
        return None  # a layer above holds or hides a path of the lower ones
    # A folder stated again above hides nothing, and its own entry is the upper one's: it must
    # be stated again now wherever it was before, or the lower one's entry is not at hand.
    now, then = ({path.rstrip("/") for listed in paths_ for path in listed if path[-1] == "/"}
                 & lower for paths_ in (paths[shared:], before["paths"][shared:]))  # fmt: skip
    if not then <= now:
        return None
    kept = set(layers[:shared])
    old = before["syft"]
    files = [entry for entry in old["files"] if entry["location"].get("layerID") in kept
             and entry["location"]["path"] not in now]  # fmt: skip
    placed = {package["id"]: {place.get("layerID") for place in package["locations"]}
              for package in old["artifacts"]}  # fmt: skip
    artifacts = [package for package in old["artifacts"] if placed[package["id"]] <= kept]
    replaced = [package for package in old["artifacts"] if not placed[package["id"]] <= kept]
    upper = {"files": [], "artifacts": [], "artifactRelationships": []}
    if shared < len(layers):
        with tempfile.TemporaryDirectory(prefix=f"{NAME}-sbom-") as folder:
            above_only = Path(folder) / "above.tar"
            image.upper(shared, above_only)
            upper = _syft(c, above_only)["syft"]
    successors = {}  # a package that was above: the one that stands in for it now
    for package in replaced:
        standing = [new for new in upper["artifacts"] if _same(package, new)]
        if len(standing) != 1:
            return None
        successors[package["id"]] = standing[0]["id"]
    if sorted(successors.values()) != sorted(new["id"] for new in upper["artifacts"]):
        return None  # a package above that was not there before
    source = old["source"]["id"]  # the image: it contains each package, and stays below
    below = {entry["id"] for entry in files} | {package["id"] for package in artifacts} | {source}
    relationships = []
    for relation in old["artifactRelationships"]:
        ends = [relation["parent"], relation["child"]]
        if all(end in below for end in ends):
            relationships.append(relation)
        elif ends[0] == source and ends[1] in successors:
            continue  # the image contains the package that stands in: the scan above says so
        elif any(end in below for end in ends):  # a tie from below to what was above
            if relation["type"] != "dependency-of" or not all(
                end in below or end in successors for end in ends
            ):
                return None
            relationships.append({**relation, "parent": successors.get(ends[0], ends[0]),
                                  "child": successors.get(ends[1], ends[1])})  # fmt: skip
    named = {upper.get("source", {}).get("id"): source}  # the scan above's image is this one
    relationships += [{**relation, "parent": named.get(relation["parent"], relation["parent"])}
                      for relation in upper["artifactRelationships"]]  # fmt: skip
    syft = {**old, "files": files + upper["files"], "artifacts": artifacts + upper["artifacts"],
            "artifactRelationships": relationships}  # fmt: skip
    cyclonedx = _converted(c, syft) if upper["artifacts"] else before["cyclonedx"]
    return {"layers": layers, "paths": paths, "syft": syft, "cyclonedx": cyclonedx}


def _same(before: dict, now: dict) -> bool:
    """Whether the package NOW stands in for BEFORE: what syft ties packages by is the same."""
    fields = ("name", "version", "type", "purl")
    wants = [(package.get("metadata") or {}).get("requiresDist") for package in (before, now)]
    return all(before.get(key) == now.get(key) for key in fields) and wants[0] == wants[1]


def _converted(c: Context, syft: dict) -> dict:
    """The CycloneDX SBOM that syft writes of its own account SYFT (its syft-json): the very
    one that its scan writes, as a scan of the whole image would."""
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-sbom-") as folder:
        (Path(folder) / "syft.json").write_text(json.dumps(syft))
        argv = [str(SYFT), "convert", f"{folder}/syft.json", "--quiet"]
        argv += ["-o", f"cyclonedx-json={folder}/cdx.json"]
        ok(
            c.run(shlex.join(argv), env={"SYFT_CHECK_FOR_APP_UPDATE": "false"}, hide=True,
                  warn=True),
            what="syft convert",
            fix="Run `inv install`, then build again.",
        )  # fmt: skip
        return json.loads((Path(folder) / "cdx.json").read_text())


def _hidden(path: str) -> set[str]:
    """The paths of a lower layer that PATH, in a layer above, replaces or removes."""
    folder, _, name = path.rpartition("/")
    if name == ".wh..wh..opq":  # an opaque folder: all that was below it
        return {folder}
    return {f"{folder}/{name.removeprefix('.wh.')}"}


def _syft_installed() -> str:
    """When syft was installed: its entry point is written anew with each install."""
    return str(SYFT.stat().st_mtime_ns) if SYFT.exists() else ""


def _syft(c: Context, archive: Path) -> dict:
    """What syft says of the image ARCHIVE (`docker save`'s): its CycloneDX SBOM, and its own
    account of the files and what holds them."""
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-sbom-") as folder:
        argv = [str(SYFT), "scan", f"docker-archive:{archive}", "--quiet"]
        argv += ["-o", f"cyclonedx-json={folder}/cdx.json", "-o", f"syft-json={folder}/syft.json"]
        env = {"SYFT_CHECK_FOR_APP_UPDATE": "false", "SYFT_FILE_METADATA_SELECTION": "all"}
        ok(
            c.run(shlex.join(argv), env=env, hide=True, warn=True),
            what="syft",
            fix="Run `inv install`, then build again.",
        )
        return {
            "cyclonedx": json.loads((Path(folder) / "cdx.json").read_text()),
            "syft": json.loads((Path(folder) / "syft.json").read_text()),  # its whole account
        }


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
    # The image's own fields: syft's would name the archive it read and what it said of it.
    root.update({"bom-ref": image["Id"], "name": NAME, "version": VERSION, "type": "container"})
    root["hashes"] = [{"alg": "SHA-256", "content": digest}]
    root["properties"] = [
        {"name": f"{NAME}:image:id", "value": image["Id"]},
        {"name": f"{NAME}:image:platform", "value": f"{image['Os']}/{image['Architecture']}"},
        *({"name": f"{NAME}:unattributed", "value": path} for path in unattributed),
    ]
    cyclonedx["metadata"]["properties"] = [  # as syft writes them
        {"name": f"syft:image:labels:{key}", "value": labels[key]} for key in sorted(labels)
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
