# The image of my-project. `inv build` builds it; BuildKit is required (secret and cache mounts).
# Stages: builder (dependencies) -> app (the source) -> test (the suite, run in the image);
# rootfs (a distroless tree) -> runtime (what ships: the last stage).

# Every stage starts from one base: a virtual environment remembers its interpreter's path.
ARG BASE_IMAGE=python:3.13-slim
# distroless: the interpreter and the app on scratch, no shell; slim: the base, for debugging.
ARG RUNTIME=distroless

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
# Debian packages, each installed only where the base lacks it: strip; what the runtime
# carries (CA certificates, time zones, service names, and docker.runtime_packages); and, for
# dependencies that build from source, docker.build_packages with gcc and Python's headers.
ARG RUNTIME_PACKAGES=""
ARG BUILD_PACKAGES=""
COPY docker/apt-install /usr/local/bin/
# hadolint ignore=SC2086 # the package lists split into one argument a package, as meant
RUN set -eu; \
    apt-install docker.runtime_packages binutils ca-certificates netbase tzdata $RUNTIME_PACKAGES; \
    if [ -n "$BUILD_PACKAGES" ]; then \
        include="$(python3 -c 'import sysconfig; print(sysconfig.get_path("include"))')"; \
        headers="$([ -f "$include/Python.h" ] || echo python3-dev)"; \
        apt-install docker.build_packages gcc libc6-dev $headers $BUILD_PACKAGES; \
    fi
# The app's environment never holds pip: pip-install runs pip from its wheel.
RUN python3 -m venv --without-pip /opt/venv
COPY docker/pip-install docker/layer /usr/local/bin/
# Dependencies change less often than the source, so they come first and stay cached.
COPY requirements.txt /tmp/
# Hashes are checked; the CA bundle and index URL are secrets that reach this step only.
# pip's cache keeps the wheels it built from sdists, by the builder's Debian packages: a
# rebuild compiles nothing, and a wheel built against other headers is never taken.
RUN --mount=type=cache,id=my-project-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    pip-install /tmp/requirements.txt
# The scripts that read the venv's native code, ELF files, with the standard library alone.
COPY docker/elf.py docker/libraries.py /opt/build/
# A wheel may link a system library that it does not bundle and the base lacks (lightgbm:
# libgomp.so.1): its Debian package, as the archive names it, is installed, for the runtime to
# carry; one that Debian lacks ends the build in one line. Nothing missing: no network.
# docker.host_libraries names those that the host mounts at run time (NVIDIA's libcuda.so.1).
ARG HOST_LIBRARIES=""
RUN python3 /opt/build/libraries.py /opt/venv
# 0 keeps the native code's symbols and the packages' test suites, for debugging.
ARG STRIP=1
# 0 leaves bytecode to each start (slower: the runtime cannot write it); for the benchmark.
ARG COMPILE=1
COPY docker/strip.py /opt/build/
# Native code ships with its symbols: stripped, polars' engine loses a quarter of its size. A
# library that stripping would break (one that patchelf rewrote) stays as it was, and test
# suites go. Bytecode is compiled once, here, not at every start of a read-only container.
RUN set -eu; \
    if [ "$STRIP" = 1 ]; then python3 /opt/build/strip.py /opt/venv; fi; \
    if [ "$COMPILE" = 1 ]; then python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv; fi; \
    layer /opt/venv

# The source, in a stage of its own: an edit rebuilds from here on, in seconds.
FROM builder AS app
COPY main.py /app/
COPY my_project/ /app/my_project/
ARG COMPILE=1
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

# What the interpreter and the app need at run time, native code included, with the dpkg
# record of every Debian package it takes files from (listed in /rootfs.packages too).
FROM builder AS rootfs
COPY docker/distroless.py /opt/build/
ARG RUNTIME_PACKAGES=""
ARG HOST_LIBRARIES=""
RUN python3 /opt/build/distroless.py /rootfs /opt/venv $RUNTIME_PACKAGES

FROM scratch AS distroless
COPY --from=rootfs /rootfs /

# The base with its shell, and what the distroless tree adds to it: the Debian packages it
# takes files from (libpq5 for psycopg2, say), installed, and the same unprivileged user. No
# installer: official Python images carry pip in /usr/local; Debian's python3 has none.
FROM base AS slim
RUN --mount=type=bind,from=rootfs,source=/rootfs.packages,target=/tmp/packages \
    --mount=type=bind,source=docker/apt-install,target=/usr/local/bin/apt-install \
    set -eu; \
    xargs --no-run-if-empty apt-install docker.runtime_packages < /tmp/packages; \
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
