"""Reproducible images: a commit gives the same image ID on any engine, on any day.

BuildKit makes each layer the same from the same files (docker/layer sets every time in them
to the epoch), but Docker 20.10's writes the time of the build into the image's config: its
`created`, and each history entry's; and, with an inline cache, the cache's links in no fixed
order. Nothing else in the config varies: the labels hold the commit and its time, never the
build's time or host. So the runtime image is written again with the commit's time
(SOURCE_DATE_EPOCH: `git log -1 --format=%ct`) in those fields, and without the cache's links.
Only its config is written: loaded back under its names, it joins the layers that the engine
holds already (0.05 s). An image written once is known again by the ID that BuildKit gave it,
and only tagged (0.1 s). But a layer that Docker took from BuildKit's cache may hold its files
in another order than a fresh build's, and so have another digest: such a layer is written
again in a fresh build's order, and loaded with the config (Archive.walked).

Podman's Buildah sets every time in its layers itself (tooling/podman.py), and writes in each
history entry the ID of the image that the step started from: IDs of the stages' images,
which vary (dpkg's log, say, holds the time of the build). Those go too. Podman loads no
archive without its layers: its archive carries them.
"""

import datetime
import hashlib
import json
import tarfile
from pathlib import Path

from invoke import Context

from shipyard.tooling import engine, podman, stamps
from shipyard.tooling.archive import Archive, add

INLINE_CACHE = "moby.buildkit.cache.v0"


def written(c: Context, image: Archive, refs: list[str], epoch: int, base: str) -> str | None:
    """The IMAGE that BuildKit (or Buildah) built on BASE, written with EPOCH as its time under
    the names REFS; its ID."""
    built = image.ref
    if c.config.run.dry:
        return built
    step = f"reproducible-{built.removeprefix('sha256:')}"
    found = (stamps.read(step) or "").split()
    if found[:1] == [str(epoch)] and engine.image_id(c, found[1]) == found[1]:
        for ref in refs:  # BuildKit's cache gave the image it gave before: known already
            engine.docker(c, "tag", found[1], ref, hide=True)
        return found[1]
    loaded = image.folder / "written.tar"
    config, entry = image.config(), {**image.manifest, "Layers": [*image.manifest["Layers"]]}
    # A layer that the engine took from its cache out of order; the base's stay the base's.
    walked = image.walked(engine.inspected(c, base).get("RootFS", {}).get("Layers", []))
    for index, layer in walked.items():
        with layer.open("rb") as data:
            digest = hashlib.file_digest(data, "sha256").hexdigest()
        config["rootfs"]["diff_ids"][index] = f"sha256:{digest}"
        entry["Layers"][index] = f"{digest}/layer.tar"
    rewrite(config, entry, loaded, refs, epoch)
    if walked or podman.chosen(c):  # Docker finds what it holds, but not a layer walked anew
        with tarfile.open(loaded, "a") as archive:
            for index, layer in walked.items():
                archive.add(layer, arcname=entry["Layers"][index])
            kept = [name for index, name in enumerate(entry["Layers"]) if index not in walked]
            image.copy_layers(kept, archive)
    engine.docker(c, "load", "--input", str(loaded), hide=True)
    if walked:  # the SBOM names the layers that the image holds
        image.read_from(loaded)
    written = engine.image_id(c, refs[0])
    stamps.record(c, step, f"{epoch} {written}")
    return written


def rewrite(config: dict, entry: dict, target: Path, refs: list[str], epoch: int) -> None:
    """Write to TARGET an image's CONFIG, its times set to EPOCH, and its manifest ENTRY (as
    `docker save` writes them) naming it REFS over its layers, which TARGET leaves out:
    `docker load` finds each of them in the engine, by its digest (written() adds those that
    the engine lacks)."""
    created = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config["created"] = created
    for step in config.get("history", []):
        step["created"] = created
        if step.get("comment", "").startswith("FROM "):  # Buildah's: the ID it started from
            del step["comment"]
    # BuildKit's inline cache, which lists its links in no fixed order: the cache's copy of
    # the image keeps it (tasks.py pushes BuildKit's own image there); this one needs none.
    config.pop(INLINE_CACHE, None)
    data = json.dumps(config, separators=(",", ":")).encode()
    entry["Config"], entry["RepoTags"] = f"{hashlib.sha256(data).hexdigest()}.json", refs
    with tarfile.open(target, "w") as archive:
        add(archive, entry["Config"], data)
        add(archive, "manifest.json", json.dumps([entry]).encode())
