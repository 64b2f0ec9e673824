"""A registry's HTTP API (the OCI distribution spec), read with the standard library alone:
what `inv verify` needs and cosign does not give, a manifest list's images and each one's
config, by digest.

Credentials are those of `docker login` (~/.docker/config.json's `auths`) or `podman login`
(its auth.json, of the same form), offered where the registry asks: Basic, or a Bearer token
from its realm. A registry that the engine reaches over plain HTTP (loopback,
insecure-registries) is reached so here too.
"""

import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
LISTS = {OCI_INDEX, DOCKER_LIST}


class RegistryError(Exception):
    """The registry refused, or did not answer: the message says which, and what was asked."""


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass
class Repository:
    """One repository of one registry: 127.0.0.1:5000/team/my-project."""

    name: str  # host[:port]/path
    insecure: bool = False  # plain HTTP
    _token: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.name.split("/", 1)[1]

    def url(self, tail: str) -> str:
        scheme = "http" if self.insecure else "https"
        return f"{scheme}://{self.host}/v2/{self.path}/{tail}"

    def manifest(self, reference: str) -> tuple[bytes, str, str] | None:
        """The manifest that REFERENCE (a tag or a digest) names: its bytes, media type and
        digest; None where there is none."""
        try:
            answer = self._get(self.url(f"manifests/{reference}"), accept=ACCEPT)
        except RegistryError as error:
            if "404" in str(error):
                return None
            raise
        body, kind = answer
        return body, kind, digest(body)

    def blob(self, blob_digest: str) -> bytes:
        body, _ = self._get(self.url(f"blobs/{blob_digest}"))
        if digest(body) != blob_digest:
            raise RegistryError(f"{self.name}: blob {blob_digest} came back as {digest(body)}")
        return body

    def _get(self, url: str, accept: str | None = None, retried: bool = False) -> tuple[bytes, str]:
        headers = {"Accept": accept} if accept else {}
        if self._token:
            headers["Authorization"] = self._token
        # http(s), composed here; the registry's redirects are followed
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                return answer.read(), answer.headers.get("Content-Type") or ""
        except urllib.error.HTTPError as error:
            challenge = error.headers.get("WWW-Authenticate", "")
            if error.code == 401 and challenge and not retried:
                self._token = _authorization(challenge, self.host)
                if self._token:
                    return self._get(url, accept, retried=True)
            raise RegistryError(f"{self.name}: GET {url.split('/v2/')[-1]}: "
                                f"{error.code} {error.reason}") from None  # fmt: skip
        except OSError as error:
            raise RegistryError(f"{self.name} does not answer ({error})") from None


def _authorization(challenge: str, host: str) -> str | None:
    """The Authorization header that answers CHALLENGE, with `docker login`'s credentials."""
    credentials = _credentials(host)
    scheme, _, parameters = challenge.partition(" ")
    if scheme.lower() == "basic":
        return f"Basic {credentials}" if credentials else None
    fields = dict(re.findall(r'(\w+)="([^"]*)"', parameters))
    if scheme.lower() != "bearer" or "realm" not in fields:
        return None
    query = "&".join(f"{key}={fields[key]}" for key in ("service", "scope") if key in fields)
    request = urllib.request.Request(f"{fields['realm']}?{query}")  # noqa: S310 # the realm
    if credentials:
        request.add_header("Authorization", f"Basic {credentials}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            token = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    found = token.get("token") or token.get("access_token")
    return f"Bearer {found}" if found else None


def _credentials(host: str) -> str | None:
    """`docker login`'s base64 user:password for HOST, where its config file holds it; or
    `podman login`'s, in the file that Podman keeps them in, of the same form."""
    docker = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}"))
    podman = os.environ.get("REGISTRY_AUTH_FILE", runtime / "containers" / "auth.json")
    for file in (Path(podman), Path.home() / ".config" / "containers" / "auth.json", docker):
        try:
            auths = json.loads(file.read_text()).get("auths", {})
        except (OSError, ValueError):
            continue
        for name, entry in auths.items():
            if re.sub(r"^https?://", "", name).split("/")[0] == host and entry.get("auth"):
                return entry["auth"]
    return None
