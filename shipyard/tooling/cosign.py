"""cosign, which signs a release and checks it: found where signing.cosign says, run with a
key pair of its own making, and never with a transparency log (a private registry has none).

cosign writes, and reads, the layout that it documents for registries without the referrers
API (Debian's docker-registry among them): beside the image whose digest is sha256:HEX, the tag
sha256-HEX.sig holds its signature, and sha256-HEX.att its signed attestations, DSSE envelopes
of in-toto statements. It reaches a registry with `docker login`'s credentials (Podman's
where Docker has no config file), and one on loopback over plain HTTP by itself. Its key is
always encrypted, with COSIGN_PASSWORD (maybe empty), which it reads from the environment.
Each failure ends in one line: cosign's own reason, and what to do.
"""

import getpass
import json
import os
import shlex
import shutil
import sys
import tempfile
from base64 import b64decode
from pathlib import Path

from invoke import Context, Exit, Result

# The first line of a private key that cosign made (older releases wrote the second).
KEY_HEADERS = ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
               "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")  # fmt: skip
INSTALL = ("Debian 13 and later: `apt-get install cosign`; elsewhere, sigstore's release "
           "(docs.sigstore.dev/cosign/system_config/installation)")  # fmt: skip


class Refused(Exception):
    """cosign found that something does not verify: its reason, in one line."""


def binary(c: Context) -> str:
    """The cosign that signing.cosign names, on PATH or by path; else one line on getting it."""
    found = shutil.which(c.signing.cosign)
    if not found:
        raise Exit(f"error: there is no cosign `{c.signing.cosign}` here (signing.cosign), and "
                   f"releases are signed and checked with it. Install it ({INSTALL}), or point "
                   "INVOKE_SIGNING_COSIGN at one.")  # fmt: skip
    return found


def password(what: str) -> str:
    """COSIGN_PASSWORD, where set (empty is a password); else asked once, on a terminal."""
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"]
    if not sys.stdin.isatty():
        raise Exit(f"error: {what} needs the key's password, and there is no terminal to ask "
                   "it on. Set COSIGN_PASSWORD (empty, for a key made without one).")  # fmt: skip
    return getpass.getpass(f"password of {what}: ")


def keygen(c: Context, key: Path, public: Path) -> None:
    """Make a key pair with cosign: KEY (private, encrypted, its owner's alone) and PUBLIC.

    cosign asks for the password where COSIGN_PASSWORD is not set, on the terminal."""
    asks = "COSIGN_PASSWORD" not in os.environ
    if asks and not sys.stdin.isatty():
        raise Exit(
            "error: cosign asks for the new key's password, and there is no terminal to "
            "ask it on. Set COSIGN_PASSWORD (empty for none), then run `inv keygen`."
        )
    key.parent.mkdir(parents=True, exist_ok=True)
    public.parent.mkdir(parents=True, exist_ok=True)
    # Made in a folder beside KEY, then moved: cosign writes PREFIX.key and PREFIX.pub, and
    # asks before overwriting (a question that `keygen --force` has answered).
    with tempfile.TemporaryDirectory(dir=key.parent, prefix=".keygen-") as folder:
        argv = [binary(c), "generate-key-pair", "--output-key-prefix", f"{folder}/cosign"]
        made = c.run(shlex.join(argv), pty=asks, hide=not asks, warn=True,
                     in_stream=None if asks else False)  # fmt: skip
        if made.failed:
            raise Exit(f"error: cosign generate-key-pair failed ({reason(made)}). Fix that, then "
                       "run `inv keygen` again.")  # fmt: skip
        if c.config.run.dry:
            return
        os.replace(f"{folder}/cosign.key", key)  # 0600, as cosign wrote it
        shutil.move(f"{folder}/cosign.pub", public)


def require_key(key: Path, public: Path) -> None:
    """End in one line where KEY is not a private key that cosign made (an older `inv keygen`
    made them with openssl, which Debian's cosign cannot import)."""
    with key.open(errors="replace") as file:
        first = file.readline().strip()
    if first not in KEY_HEADERS:
        raise Exit(f"error: {key} is not a key that cosign made ({first[:40] or 'empty'}...), and "
                   "cosign signs with its own alone. Make a pair with `inv keygen --force`, "
                   f"commit the new {public}, and push again.")  # fmt: skip


def _registry(insecure: bool) -> list[str]:
    # Loopback is reached over plain HTTP without it; another such registry needs it.
    return ["--allow-http-registry"] if insecure else []


def _signing(c: Context, key: Path, secret: str, insecure: bool, *args: str) -> Result:
    """cosign ARGS with KEY, whose password is SECRET. No transparency log is written to."""
    argv = [binary(c), *args, "--key", str(key), "--tlog-upload=false", *_registry(insecure)]
    done = c.run(shlex.join(argv), env={"COSIGN_PASSWORD": secret}, echo=True, hide=True,
                 warn=True, in_stream=False)  # fmt: skip
    if done.failed:
        said = reason(done)
        if "decrypt" in said:
            raise Exit(f"error: cosign cannot open {key} with COSIGN_PASSWORD ({said}). Set the "
                       "password that it was made with, then push again.")  # fmt: skip
        raise Exit(f"error: cosign {args[0]} failed ({said}). The image is pushed, and its "
                   "evidence may not be: fix that, then push again.")  # fmt: skip
    return done


def sign(c: Context, key: Path, secret: str, images: list[str], insecure: bool) -> None:
    """Sign each of IMAGES (REPOSITORY@DIGEST): one cosign, which opens the key once."""
    _signing(c, key, secret, insecure, "sign", *images)


def attest(c: Context, key: Path, secret: str, image: str, kind: str, predicate: Path,
           insecure: bool) -> None:  # fmt: skip
    """Attest PREDICATE (a file) of IMAGE, of type KIND: it replaces any attestation of that
    type. Never two at once for one image: each rewrites the image's .att tag."""
    args = ["attest", "--type", kind, "--predicate", str(predicate), "--replace", image]
    _signing(c, key, secret, insecure, *args)


def _checking(c: Context, public: Path, insecure: bool, *args: str) -> Result:
    argv = [binary(c), *args, "--key", str(public), "--insecure-ignore-tlog", *_registry(insecure)]
    done = c.run(shlex.join(argv), hide=True, warn=True, in_stream=False)
    if done.failed:
        *command, image = args
        raise Refused(f"{image}: `cosign {shlex.join(command)}` with {public} fails: "
                      f"{reason(done)}")  # fmt: skip
    return done


def verify(c: Context, public: Path, image: str, insecure: bool) -> None:
    """Check IMAGE's signature (REPOSITORY@DIGEST) with PUBLIC; raise Refused if none holds."""
    _checking(c, public, insecure, "verify", image)


def verify_attestation(c: Context, public: Path, image: str, kind: str, insecure: bool) -> list:
    """The in-toto statements of type KIND about IMAGE that PUBLIC's key signed, each as a
    dict; raise Refused where there is none. cosign checks that each names IMAGE's digest."""
    done = _checking(c, public, insecure, "verify-attestation", "--type", kind, image)
    envelopes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [json.loads(b64decode(envelope["payload"])) for envelope in envelopes]


def reason(result: Result) -> str:
    """cosign's own reason for failing, from its `Error: ...` line."""
    lines = result.stderr.strip().splitlines()
    said = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    return (said or lines[-1:] or [f"exit {result.exited}"])[0].strip()
