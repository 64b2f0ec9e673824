"""An image as `docker save` writes it: saved once, when first read, for each step that reads it.

Writing an image reproducibly reads its config, and its layers' order; its SBOM reads its
layers. Both read one archive, and neither saves the image when its stamp says that its work
is done.
"""

import contextlib
import copy
import functools
import io
import json
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path

from invoke import Context

from shipyard.tooling import engine
from shipyard.tooling.commands import ok
from shipyard.tooling.project import NAME


class Archive:
    """The image REF as `docker save` writes it into FOLDER, saved when first read."""

    def __init__(self, c: Context, ref: str, folder: Path) -> None:
        self.c, self.ref, self.folder = c, ref, folder

    @functools.cached_property
    def path(self) -> Path:
        path = self.folder / "image.tar"
        saved = engine.docker(self.c, "save", "--output", str(path), self.ref, hide=True, warn=True)
        ok(saved, what=f"docker save {self.ref}", fix="See the error above.")
        return path

    @functools.cached_property
    def manifest(self) -> dict:
        """The archive's one manifest entry: its config's and its layers' names in it."""
        with tarfile.open(self.path) as archive:
            return json.load(archive.extractfile("manifest.json"))[0]

    def config(self) -> dict:
        """The image's config, as the engine holds it."""
        with tarfile.open(self.path) as archive:
            return json.load(archive.extractfile(self.manifest["Config"]))

    def paths(self, layer: int) -> list[str]:
        """The paths that the LAYER-th layer holds (a whiteout under its own name), as /PATH;
        a folder's as /PATH/."""
        with tarfile.open(self.path) as archive:
            inner = archive.extractfile(self.manifest["Layers"][layer])
            with tarfile.open(fileobj=inner) as tar:
                members = ((member.name.removeprefix("./").rstrip("/"), member.isdir())
                           for member in tar.getmembers())  # fmt: skip
                return [f"/{name}{'/' if folder else ''}" for name, folder in members
                        if name not in {"", "."}]  # fmt: skip

    def upper(self, start: int, target: Path) -> None:
        """Write to TARGET an archive of the layers from the START-th up, as an image of its
        own: what a scan of only those layers reads."""
        config = self.config()
        config["rootfs"]["diff_ids"] = config["rootfs"]["diff_ids"][start:]
        config.pop("history", None)  # it would no longer match the layers
        layers = self.manifest["Layers"][start:]
        entry = {"Config": "config.json", "RepoTags": None, "Layers": layers}
        with tarfile.open(target, "w") as archive:
            add(archive, "config.json", json.dumps(config).encode())
            add(archive, "manifest.json", json.dumps([entry]).encode())
            self.copy_layers(layers, archive)

    def copy_layers(self, layers: list[str], archive: tarfile.TarFile) -> None:
        """Add to ARCHIVE the LAYERS of this one (their names in its manifest), each once."""
        with tarfile.open(self.path) as source:
            for name in dict.fromkeys(layers):
                member = _layer(source, name)
                renamed = copy.copy(member)
                renamed.name = name
                archive.addfile(renamed, source.extractfile(member))

    def walked(self, base: Collection[str] = ()) -> dict[int, Path]:
        """The layers whose entries are out of walk order, each written in it into the folder:
        the file, by the layer's index. A fresh build's layer is in walk order, each folder's
        names sorted, and a folder before what it holds. Docker 20.10 may write a layer that it
        takes from BuildKit's cache in the order of its whole paths instead, which puts
        my_project-0.1.0.dist-info/ in the middle of my_project/. Only the order changes, not a
        byte of an entry: the layer is then the one that a fresh build makes. The base's
        layers (their digests BASE) are left as they came, and so is a layer that removes a
        file (a whiteout)."""
        walked = {}
        digests = self.config()["rootfs"]["diff_ids"]
        with tarfile.open(self.path) as source:
            for index, name in enumerate(self.manifest["Layers"]):
                if digests[index] in base:
                    continue
                layer = source.extractfile(_layer(source, name))
                with tarfile.open(fileobj=layer) as entries:
                    members = entries.getmembers()
                order = sorted(members, key=lambda member: member.name.rstrip("/").split("/"))
                whiteout = any(posixpath.basename(m.name).startswith(".wh.") for m in members)
                if order == members or whiteout:
                    continue
                walked[index] = self.folder / f"layer-{index}.tar"
                with walked[index].open("wb") as target:
                    for member in order:  # its header blocks (a long name's too), its data
                        layer.seek(member.offset)
                        target.write(layer.read(_end(member) - member.offset))
                    layer.seek(_end(members[-1]))
                    shutil.copyfileobj(layer, target)  # the blocks that end the archive
        return walked

    def read_from(self, path: Path) -> None:
        """Read, from now on, the archive at PATH: the image that this one was written into,
        with every layer."""
        self.__dict__.update(path=path)
        self.__dict__.pop("manifest", None)


def _layer(archive: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    """The member of ARCHIVE (as `docker save` writes it) that holds the layer NAME: a layer
    that it holds once is linked to under its other names."""
    member = archive.getmember(name)
    if member.issym():
        linked = posixpath.join(posixpath.dirname(name), member.linkname)
        member = archive.getmember(posixpath.normpath(linked))
    return member


def _end(member: tarfile.TarInfo) -> int:
    """Where MEMBER of a tar ends: after its data, padded to a block."""
    return member.offset_data + (-(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)


@contextlib.contextmanager
def saved(c: Context, ref: str) -> Iterator[Archive]:
    """The image REF's archive, to read while the context lasts; it is then removed."""
    with tempfile.TemporaryDirectory(prefix=f"{NAME}-image-") as folder:
        yield Archive(c, ref, Path(folder))


def add(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    """Add a file NAME that holds CONTENT to ARCHIVE."""
    info = tarfile.TarInfo(name)
    info.size = len(content)
    archive.addfile(info, io.BytesIO(content))
