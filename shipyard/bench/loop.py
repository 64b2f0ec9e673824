"""The inner loop, measured: `inv build` after an edit of the app, and with nothing changed,
beside a plain two-stage build of the same edit, in one run, on the engine that the tasks use.

Usage (what `inv bench` runs, from the project root; on Podman, it is all that runs):

    python shipyard/bench/loop.py --engine docker --base IMAGE --source PATH \
        [--secret id=pip_cert,src=FILE]... [--rounds 3] [--out docs]

In a committed copy of the project that shares its .venv, `inv build` runs once to warm up,
and the plain build (shipyard/bench/baseline-two-stage.Dockerfile: the same base and
requirements, a builder's venv, the app installed by pip, built by its own backend) once too.
Then each round edits SOURCE (a module of the app) with a line of its own, and times, in
turn: `inv build` (the edit), `inv build` again (nothing changed), the plain build (the same
edit), and the plain build again. The medians of the rounds, their ratios, and each step of
`inv build` as its own lines say it (the engine's build, the config written again, the SBOM,
the import check) go to OUT/inner-loop.md, in the row of this engine; the other engine's row
is kept as it was. The images are named loop-bench and loop-plain, and removed at the end.
"""

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the project root: the build context
BASELINE = Path(__file__).resolve().parent / "baseline-two-stage.Dockerfile"
IMAGE, PLAIN = "loop-bench", "loop-plain"
# What `inv build` says of each step, and how long it took.
STEPS = {
    "the engine's build": re.compile(r"\(the engine ([\d.]+) s"),
    "the config written again": re.compile(r"; written again ([\d.]+) s\)"),
    "the SBOM": re.compile(r"^SBOM: .*, ([\d.]+) s\)$", re.MULTILINE),
    "the import check": re.compile(r"^import check of .* in ([\d.]+) s", re.MULTILINE),
}
WHERE = "Where an edit's `inv build` spends its time, on "
HEADER = (
    "| engine | edit: `inv build` | edit: plain build | ratio | no-op: `inv build` "
    "| of which the engine's build | beyond it | no-op: plain build | measured |"
)


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    """Run ARGV in CWD; its seconds, and what it printed. A failure ends the benchmark."""
    start = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.monotonic() - start
    if done.returncode:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        sys.exit(f"error: `{shlex.join(argv)}` failed (exit {done.returncode}), see above")
    return seconds, done.stdout + done.stderr


def copy(destination: Path) -> None:
    """A committed copy of the project at DESTINATION, sharing its .venv."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run([*git, *command], cwd=destination, check=True, capture_output=True)


def measure(args: argparse.Namespace) -> dict:
    engine = shlex.split(args.engine)
    invoke = [sys.executable, "-m", "invoke", "build"]
    plain = [*engine, "build", "--file", str(BASELINE), "--build-arg", f"BASE_IMAGE={args.base}"]
    plain += [*args.secret, "--tag", PLAIN, "."]
    env = {"INVOKE_DOCKER_IMAGE": IMAGE, "DOCKER_BUILDKIT": "1"}
    rounds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as folder:
        tree = Path(folder)
        copy(tree)
        progress("warming up: inv build, and the plain build ...")
        timed(invoke, tree, env)
        timed(plain, tree, env)
        for number in range(args.rounds):
            with (tree / args.source).open("a") as source:
                source.write(f"# an edit of the inner loop's benchmark ({time.time_ns()})\n")
            for name, argv in (("edit", invoke), ("no-op", invoke),
                               ("plain edit", plain), ("plain no-op", plain)):  # fmt: skip
                seconds, said = timed(argv, tree, env)
                rounds.setdefault(name, []).append(seconds)
                if name in ("edit", "no-op"):
                    for step, pattern in STEPS.items():
                        found = pattern.findall(said)
                        if found:
                            rounds.setdefault(f"{name}: {step}", []).append(float(found[-1]))
            progress(f"round {number + 1}: " + ", ".join(
                f"{name} {values[-1]:.2f} s" for name, values in rounds.items()
                if ":" not in name))  # fmt: skip
    return {name: statistics.median(values) for name, values in rounds.items()}


def report(figures: dict, engine: str, out: Path, rounds: int) -> Path:
    """Write this engine's row and steps of OUT/inner-loop.md, keeping the other engine's."""
    target = out / "inner-loop.md"
    rows, steps, section = {}, {}, None  # by engine: its row, and its steps' lines
    if target.is_file():
        for line in target.read_text().splitlines():
            if line.startswith(WHERE):
                section = line.removeprefix(WHERE).partition(" ")[0]
            elif not line.startswith("| ") or line.startswith(("| engine", "| step", "| ---")):
                continue
            elif section:
                steps.setdefault(section, []).append(line)
            else:
                rows[line.split("|")[1].strip()] = line
    engine_part = figures.get("no-op: the engine's build", 0.0)
    rows[engine] = (
        f"| {engine} | {figures['edit']:.2f} s | {figures['plain edit']:.2f} s "
        f"| {figures['edit'] / figures['plain edit']:.2f} x | {figures['no-op']:.2f} s "
        f"| {engine_part:.2f} s | {figures['no-op'] - engine_part:.2f} s "
        f"| {figures['plain no-op']:.2f} s | {datetime.now(UTC):%Y-%m-%d} |"
    )
    steps[engine] = [f"| {name.partition(': ')[2]} | {seconds:.2f} s |"
                     for name, seconds in figures.items() if name.startswith("edit: ")]  # fmt: skip
    sections = [
        line
        for name in sorted(steps)
        for line in (f"{WHERE}{name} (the rest: the checks before it, and the provenance):", "",
                     "| step | seconds |", "| --- | --- |", *steps[name], "")
    ]  # fmt: skip
    text = "\n".join([
        "# The inner loop",
        "",
        "_Written by `inv bench` (shipyard/bench/loop.py). Each figure is the median of "
        f"{rounds} rounds on one machine, in one run; the plain build is "
        "shipyard/bench/baseline-two-stage.Dockerfile (the same base and requirements, the app "
        "installed by pip, built by its own backend), edited as the app is._",
        "",
        "Goals: an edit's `inv build` within 3 x the plain build's; with nothing changed, at most "
        "1 s beyond the engine's own cached build.",
        "",
        HEADER,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(rows[name] for name in sorted(rows)),
        "",
        *sections,
    ])  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def progress(line: str) -> None:
    print(f"loop: {line}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="docker", help="the engine's CLI: docker, podman")
    parser.add_argument("--base", required=True, help="the base image of the plain build")
    parser.add_argument("--source", required=True, help="a module of the app, to edit")
    parser.add_argument("--secret", action="append", default=[], help="passed to plain builds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; their medians are kept")
    parser.add_argument("--out", default="docs", help="the folder of the report")
    args = parser.parse_args()
    args.secret = [flag for secret in args.secret for flag in ("--secret", secret)]
    name = Path(shlex.split(args.engine)[0]).name
    try:
        figures = measure(args)
    finally:
        for image in (IMAGE, PLAIN):
            subprocess.run([*shlex.split(args.engine), "image", "rm", "--force",
                            f"{image}:latest"], capture_output=True, check=False)  # fmt: skip
    written = report(figures, name, ROOT / args.out, args.rounds)
    ratio = figures["edit"] / figures["plain edit"]
    beyond = figures["no-op"] - figures.get("no-op: the engine's build", 0.0)
    progress(f"wrote {written}: an edit {ratio:.2f} x the plain build's (goal: 3 x); "
             f"nothing changed, {beyond:.2f} s beyond the engine's build (goal: 1 s)")  # fmt: skip


if __name__ == "__main__":
    main()
