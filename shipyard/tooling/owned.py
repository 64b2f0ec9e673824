"""What the project owns on the engine: its images and containers, told apart from all else.

A label cannot tell an image of ours from one built on it: Docker and Podman alike copy an
image's labels into every image built FROM it, so `someone/tool:1`, built on my-project:latest,
carries my-project.role=runtime too. What such an image cannot inherit is a name or an ID.
So an image is the project's when:
- it is tagged in a repository that the tasks write: docker.image, the base's, push's and
  its throwaway, the build cache's, the benchmark's; or
- the tasks recorded its ID, with the name they gave it, when they built it (in .venv/stamps,
  beside what each step last did), and it still bears that name, or none at all: a leftover
  of a rebuild, whose name moved on to the new image.
Names and IDs are what every engine's CLI lists, Podman's included. The label stays on every
image and container, to say what it is for and to narrow the listing, never as proof.

A container is the project's when it carries a label set on the container itself, never on an
image (a container inherits its image's labels too): `run`'s leftovers (role run), the dev
container, which also has its fixed name, and a base upgrade's leftover (role upgrade, and its
name), of a process that was killed.
"""

import json

from invoke import Context

from shipyard.tooling import engine, podman
from shipyard.tooling.project import NAME, ROLE, STAMPS

LEDGER = STAMPS / "images"  # "ID NAME:TAG", a line for each image the tasks built
CACHE = "<build-cache>"  # the name in the ledger of an image of Podman's build cache


def repositories(c: Context) -> set[str]:
    """The repositories that the tasks tag images in, under this configuration."""
    names = {c.docker.image, f"{NAME}-base", f"{NAME}-verify", f"{NAME}-bench"}
    if c.registry.url:
        names.add(f"{c.registry.url.rstrip('/')}/{c.docker.image}")
    if c.registry.cache:  # its name here, whether or not the registry answers now
        names.add(c.registry.cache.rstrip("/"))
    return names


def built(c: Context, image: str | None, *refs: str) -> None:
    """Record that the tasks just built IMAGE (an ID) under the names REFS."""
    if c.config.run.dry or not image:
        return
    LEDGER.parent.mkdir(parents=True, exist_ok=True)
    known = set(LEDGER.read_text().splitlines()) if LEDGER.is_file() else set()
    with LEDGER.open("a") as ledger:
        ledger.writelines(f"{image} {ref}\n" for ref in refs if f"{image} {ref}" not in known)


def cached(c: Context, images: list[str]) -> None:
    """Record IMAGES (IDs, or their first hex digits) as the build cache that the tasks' own
    builds made: Podman's untagged image of each step."""
    if c.config.run.dry or not images:
        return
    LEDGER.parent.mkdir(parents=True, exist_ok=True)
    known = set(LEDGER.read_text().splitlines()) if LEDGER.is_file() else set()
    with LEDGER.open("a") as ledger:
        ledger.writelines(
            f"{image} {CACHE}\n" for image in images if f"{image} {CACHE}" not in known
        )


def build_cache(c: Context) -> dict[str, int]:
    """The images of Podman's build cache that the tasks' own builds made, untagged still:
    each one's ID, with its size in bytes."""
    listed = engine.probe(c, "image", "ls", "--all", "--format", "json")
    found = json.loads(listed.stdout or "[]") if listed.ok else []
    made = [image for image, ref in _recorded() if ref == CACHE]
    return {
        podman.image_id(image["Id"]): int(image.get("Size") or 0)
        for image in found
        if not image.get("Names") and any(image["Id"].startswith(ours) for ours in made)
    }


def images(c: Context, role: str | None = None) -> list[str]:
    """The project's images (with ROLE only, if given): a name for each tagged one, the ID of
    each untagged one. Removing these names removes exactly what the project made."""
    label = f"label={ROLE}={role}" if role else f"label={ROLE}"
    listing = engine.probe(
        c, "image", "ls", "--no-trunc", "--filter", label,
        "--format", "{{.ID}} {{.Repository}}:{{.Tag}}",
    )  # fmt: skip
    rows = [line.split(" ", 1) for line in listing.stdout.splitlines() if " " in line]
    recorded, ours = _recorded(), repositories(c)
    recorded_ids = {known for known, _ in recorded}
    named = podman.name if podman.chosen(c) else str  # as the tasks name it: no localhost/

    def mine(image: str, ref: str) -> bool:
        ref = named(ref)
        repository, _, tag = ref.rpartition(":")
        if tag == "<none>":  # untagged: a rebuild's leftover, or pulled by digest alone
            return image in recorded_ids or repository in ours
        return repository in ours or (image, ref) in recorded

    # An image that also bears a name of someone else's is never removed by its ID.
    shared = {image for image, ref in rows if not mine(image, ref)}
    found = [
        ref if not ref.endswith(":<none>") else image
        for image, ref in rows
        if mine(image, ref) and (not ref.endswith(":<none>") or image not in shared)
    ]
    return list(dict.fromkeys(found))


def forget_removed(c: Context) -> None:
    """Drop from the record the images that are gone: it stays as short as the engine's list."""
    if c.config.run.dry or not LEDGER.is_file():
        return
    present = set(engine.ids(c, "image", "ls", "--all", "--no-trunc", "--filter", f"label={ROLE}"))
    kept = [line for line in LEDGER.read_text().splitlines() if line.split(" ")[0] in present]
    LEDGER.write_text("".join(f"{line}\n" for line in kept))


def containers(c: Context, base: bool = False) -> list[str]:
    """The project's containers that are leftovers: the dev container, and the stopped
    containers of `inv run` (a live one belongs to someone's terminal); with BASE, those of a
    base upgrade too (a stopped one may be a moment from its export: they go with the base)."""
    dev = engine.ids(c, "container", "ls", "--all", "--filter", f"name=^{NAME}-dev$",
                     "--filter", f"label={ROLE}=dev")  # fmt: skip
    # Podman has no "dead" containers, and refuses the filter.
    states = ("created", "exited", "stopped") if podman.chosen(c) else ("created", "exited", "dead")
    stopped = [flag for state in states for flag in ("--filter", f"status={state}")]
    runs = engine.ids(c, "container", "ls", "--all", "--filter", f"label={ROLE}=run", *stopped)
    upgrades = engine.ids(c, "container", "ls", "--all", "--filter", f"label={ROLE}=upgrade",
                          "--filter", f"name=^{NAME}-base-upgrade-", *stopped)  # fmt: skip
    return list(dict.fromkeys(dev + runs + (upgrades if base else [])))


def _recorded() -> set[tuple[str, str]]:
    """The (ID, NAME:TAG) pairs that the tasks recorded when they built an image."""
    if not LEDGER.is_file():
        return set()
    pairs = (line.split(" ", 1) for line in LEDGER.read_text().splitlines() if " " in line)
    return {(image, ref) for image, ref in pairs}
