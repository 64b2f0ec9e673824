"""Reproducible images: a commit gives the same image ID on any engine, on any day.

BuildKit makes each layer the same from the same files (docker/layer sets every time in them
to the epoch), but Docker 20.10's writes the time of the build into the image's config: its
`created`, and each history entry's; and, with an inline cache, the cache's links in no fixed
order. Nothing else in the config varies: the labels hold the commit and its time, never the
build's time or host. So the runtime image is written again with the commit's time
(SOURCE_DATE_EPOCH: `git log -1 --format=%ct`) in those fields, and without the cache's links:
saved, its config rewritten, and loaded back under its names, with every layer as it was. An
image written once is known again by the ID that BuildKit gave it, and only tagged (0.1 s).
"""

import datetime
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

from invoke import Context

from tooling import engine, stamps

INLINE_CACHE = "moby.buildkit.cache.v0"


def written(c: Context, built: str | None, refs: list[str], epoch: int) -> str | None:
    """The image BUILT (an ID), written with EPOCH as its time under the names REFS; its ID."""
    if not built or c.config.run.dry:
        return built
    step = f"reproducible-{built.removeprefix('sha256:')}"
    found = (stamps.read(step) or "").split()
    if found[:1] == [str(epoch)] and engine.image_id(c, found[1]) == found[1]:
        for ref in refs:  # BuildKit's cache gave the image it gave before: known already
            engine.docker(c, "tag", found[1], ref, hide=True)
        return found[1]
    with tempfile.TemporaryDirectory(prefix="my-project-image-") as folder:
        saved, loaded = Path(folder) / "saved.tar", Path(folder) / "written.tar"
        engine.docker(c, "save", "--output", str(saved), built, hide=True)
        rewrite(saved, loaded, refs, epoch)
        engine.docker(c, "load", "--input", str(loaded), hide=True)
    image = engine.image_id(c, refs[0])
    stamps.record(c, step, f"{epoch} {image}")
    return image


def rewrite(saved: Path, target: Path, refs: list[str], epoch: int) -> None:
    """Copy the image archive SAVED (`docker save`'s) to TARGET, its config's times set to
    EPOCH, its names REFS. The layers are copied as they are."""
    created = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tarfile.open(saved) as source, tarfile.open(target, "w") as archive:
        [entry] = json.load(source.extractfile("manifest.json"))
        config = json.load(source.extractfile(entry["Config"]))
        config["created"] = created
        for step in config.get("history", []):
            step["created"] = created
        # BuildKit's inline cache, which lists its links in no fixed order: the cache's copy of
        # the image keeps it (tasks.py pushes BuildKit's own image there); this one needs none.
        config.pop(INLINE_CACHE, None)
        data = json.dumps(config, separators=(",", ":")).encode()
        old, entry["Config"] = entry["Config"], f"{hashlib.sha256(data).hexdigest()}.json"
        entry["RepoTags"] = refs
        for member in source:
            if member.name not in {old, "manifest.json", "repositories"}:
                archive.addfile(member, source.extractfile(member) if member.isfile() else None)
        manifest = json.dumps([entry]).encode()
        for name, content in ((entry["Config"], data), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
