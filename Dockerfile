# The image of my-project. `inv build` builds it; BuildKit is required (secret and cache mounts).
# Stages: builder (dependencies) -> app (the source) -> test (the suite, run in the image);
# rootfs (a distroless tree) -> runtime (what ships: the last stage).

# Every stage starts from one base: a virtual environment remembers its interpreter's path.
ARG BASE_IMAGE=python:3.13-slim
# distroless: the interpreter and the app on scratch, no shell; slim: the base, for debugging.
ARG RUNTIME=distroless
# 0 keeps the native libraries' symbols, for debugging.
ARG STRIP=1
# 0 leaves bytecode to each start (slower: the runtime cannot write it); for the benchmark.
ARG COMPILE=1

FROM ${BASE_IMAGE} AS base
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1

FROM base AS builder
# The base must have python.version's Python: the lock, and so the venv, fit that one alone.
ARG PYTHON_VERSION=3.13
RUN found="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
    [ "$found" = "$PYTHON_VERSION" ] || { \
        echo "error: the base image has Python $found, not python.version's $PYTHON_VERSION. Set docker.base to a Python $PYTHON_VERSION image, or leave it unset." >&2; \
        exit 1; \
    }
# strip, to shrink the native libraries, is needed here only; the runtime never sees it.
# hadolint ignore=DL3008 # unpinned: a tool of this throwaway stage, from the base's own release
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        binutils \
    ; \
    rm -rf /var/lib/apt/lists/*
# pip lives in an environment of its own, so that the app's environment never holds it.
RUN python3 -m venv /opt/pip \
    && python3 -m venv --without-pip /opt/venv
COPY docker/pip-install docker/layer /usr/local/bin/
# Dependencies change less often than the source, so they come first and stay cached.
COPY requirements.txt /tmp/
# Hashes are checked; the CA bundle and index URL are secrets that reach this step only.
RUN --mount=type=cache,id=my-project-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    pip-install /tmp/requirements.txt
ARG STRIP
ARG COMPILE
# Native libraries ship with their symbols: stripped, polars' runtime loses a quarter of its size.
# Bytecode is compiled once, here, instead of at every start of a container that cannot write it.
RUN set -eu; \
    if [ "$STRIP" = 1 ]; then find /opt/venv -name '*.so' -exec strip --strip-unneeded {} +; fi; \
    if [ "$COMPILE" = 1 ]; then python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv; fi; \
    layer /opt/venv

# The source, in a stage of its own: an edit rebuilds from here on, in seconds.
FROM builder AS app
COPY main.py /app/
COPY my_project/ /app/my_project/
ARG COMPILE
RUN set -eu; \
    if [ "$COMPILE" = 1 ]; then python3 -m compileall -q --invalidation-mode unchecked-hash /app; fi; \
    layer /app

# The suite runs against the app as the image holds it, with the stripped dependencies.
FROM app AS test
COPY requirements-test.txt /tmp/
RUN --mount=type=cache,id=my-project-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    pip-install /tmp/requirements-test.txt
WORKDIR /app
COPY pyproject.toml ./
COPY tests/ tests/
RUN /opt/venv/bin/python -m pytest -p no:cacheprovider --cov=my_project --cov-fail-under=100 tests

# Only what the interpreter and the app need, gathered for a scratch image.
FROM builder AS rootfs
COPY docker/distroless.py /tmp/
RUN python3 /tmp/distroless.py /rootfs /opt/venv

FROM scratch AS distroless
COPY --from=rootfs /rootfs /

# The base with its shell, the same unprivileged user as the distroless tree, and no installer
# (official Python images carry pip in /usr/local; Debian's python3 has none).
FROM base AS slim
RUN set -eux; \
    groupadd --gid 10001 app; \
    useradd --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app; \
    rm -rf /usr/local/bin/pip* /usr/local/lib/python3*/site-packages/pip \
        /usr/local/lib/python3*/site-packages/pip-*

FROM ${RUNTIME} AS runtime
# The dependencies: the largest layer, and the one that changes least.
COPY --from=builder /layers/venv/ /
# The app, owned by root: the user that runs it cannot change it.
COPY --from=app /layers/app/ /
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
# Smoke test, in exec form: the distroless runtime has no shell.
RUN ["/opt/venv/bin/python", "-c", "import my_project.cli"]
ENTRYPOINT ["/opt/venv/bin/python", "/app/main.py"]
# Last, so that a new revision relabels the image without rebuilding a layer.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="my-project" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
