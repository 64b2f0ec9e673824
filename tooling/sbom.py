"""The SBOM of the runtime image: a CycloneDX document in dist/, named by the image's label."""

import hashlib
import shlex
from pathlib import Path

from invoke import Context

from tooling import stamps
from tooling.commands import ok
from tooling.project import NAME, VENV, VERSION


def write(c: Context) -> str:
    """Write the CycloneDX SBOM of the runtime's Python packages; return the label that names it."""
    path = Path("dist") / f"{NAME}-{VERSION}.cdx.json"
    fingerprint = stamps.digest("requirements.txt")
    if not (path.is_file() and stamps.done("sbom", fingerprint)):
        if not c.config.run.dry:
            path.parent.mkdir(exist_ok=True)
        argv = [str(VENV / "bin" / "cyclonedx-py"), "requirements", "--output-reproducible"]
        argv += ["--output-format", "JSON", "--output-file", str(path), "requirements.txt"]
        ok(c.run(shlex.join(argv), echo=True, warn=True), what="the SBOM", fix="Run `inv install`.")
        stamps.record(c, "sbom", fingerprint)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "unknown"
    print(f"SBOM: {path}")
    return f"{NAME}.sbom={path} sha256:{digest}"
