# The image of my-project. `inv build` builds it; BuildKit is required (secret and cache mounts).
# Stages run where their work must. On the target's CPU (emulated, for another architecture's
# image): system (the base and its Debian packages), sdists, libs, the ldconfig cache and test.
# On the engine's own CPU, whatever the target: builder (the venv), app (the source) and rootfs
# (a distroless tree), which read the target's files as data. runtime, what ships, is the last.

# The target's base, and the builder's: the same Python image on the engine's own platform.
# (A venv remembers its interpreter's path; Python's bytecode is the same on every machine.)
ARG BASE_IMAGE=python:3.13-slim
ARG BUILD_IMAGE=${BASE_IMAGE}
ARG BUILDER_PLATFORM=$BUILDPLATFORM
# distroless: the interpreter and the app on scratch, no shell; slim: the base, for debugging.
ARG RUNTIME=distroless

FROM ${BASE_IMAGE} AS base
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1

# The target's system: what the runtime carries of Debian (CA certificates, time zones, service
# names, and docker.runtime_packages), each installed only where the base lacks it.
FROM base AS system
ARG RUNTIME_PACKAGES=""
COPY docker/apt-install /usr/local/bin/
# hadolint ignore=SC2086 # the package lists split into one argument a package, as meant
RUN apt-install docker.runtime_packages ca-certificates netbase tzdata $RUNTIME_PACKAGES

# Dependencies that have no wheel for the target (tasks.py reads them off poetry.lock) build
# from their sdists here, on the target, with docker.build_packages, gcc and Python's headers.
# None (most apps): nothing runs. pip's cache keeps the wheels it built, by Debian packages.
FROM system AS sdists
ARG SDISTS=""
ARG BUILD_PACKAGES=""
COPY docker/pip-install docker/build-tools /usr/local/bin/
COPY requirements.txt /tmp/
# hadolint ignore=SC2086 # the package list splits into one argument a package, as meant
RUN --mount=type=cache,id=my-project-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    set -eu; \
    mkdir -p /opt/venv /opt/build; \
    if [ -n "$SDISTS" ]; then \
        APT_RECORD=/opt/build/packages build-tools $BUILD_PACKAGES; \
        python3 -m venv --without-pip /opt/venv; \
        pip-install --only "$SDISTS" /tmp/requirements.txt; \
    fi

# The venv, made on the engine's own CPU for the target (mounted at /target, as data, with
# what building the sdists installed there: libpq5, with libpq-dev): its wheels, the sdists'
# venv, what the target lacks of what they link, strip, and bytecode.
# hadolint ignore=DL3029 # the engine's platform, by design: the target's is only read here
FROM --platform=${BUILDER_PLATFORM} ${BUILD_IMAGE} AS builder
# Bytecode holds sets in the order of their strings' hashes: one seed makes it the same on
# every build.
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONHASHSEED=0
# The lock, and so the venv, fit python.version's Python alone: both bases must have it.
ARG PYTHON_VERSION=3.13
# binutils for the target's architecture (binutils-aarch64-linux-gnu for arm64 on amd64).
ARG STRIP_PACKAGE=binutils
COPY docker/apt-install /usr/local/bin/
RUN --mount=type=bind,from=sdists,target=/target \
    set -eu; \
    found="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
    stdlib="$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"; \
    [ "$found" = "$PYTHON_VERSION" ] && [ -d "/target$stdlib" ] || { \
        echo "error: the base image has no Python $PYTHON_VERSION at $stdlib on every platform (the builder's has $found). Set docker.base to a Python $PYTHON_VERSION image, or leave it unset." >&2; \
        exit 1; \
    }; \
    mkdir -p /opt/build; \
    cat /target/opt/build/packages >/opt/build/packages 2>/dev/null || true; \
    APT_RECORD=/opt/build/packages apt-install docker.platforms "$STRIP_PACKAGE"
# The app's environment never holds pip: pip-install runs pip from its wheel.
RUN python3 -m venv --without-pip /opt/venv
COPY --from=sdists /opt/venv/ /opt/venv/
COPY docker/pip-install docker/layer /usr/local/bin/
# Dependencies change less often than the source, so they come first and stay cached.
COPY requirements.txt /tmp/
# Hashes are checked; the CA bundle and index URL are secrets that reach this step only.
RUN --mount=type=cache,id=my-project-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    --mount=type=bind,from=sdists,target=/target \
    pip-install --for /target /tmp/requirements.txt
# The scripts that read ELF files, the venv's and the target's, with the standard library alone.
COPY docker/elf.py docker/libraries.py /opt/build/
# A wheel may link a system library that it does not bundle and the target lacks (lightgbm:
# libgomp.so.1): listed here, for libs to install. docker.host_libraries names those that the
# host mounts at run time (NVIDIA's libcuda.so.1).
ARG HOST_LIBRARIES=""
RUN --mount=type=bind,from=sdists,target=/target \
    python3 /opt/build/libraries.py --root /target --missing /opt/build/missing.json /opt/venv
# 0 keeps the native code's symbols and the packages' test suites, for debugging.
ARG STRIP=1
ARG STRIP_PROGRAM=strip
# 0 leaves bytecode to each start (slower: the runtime cannot write it); for the benchmark.
ARG COMPILE=1
COPY docker/strip.py /opt/build/
# Native code ships with its symbols: stripped, polars' engine loses a quarter of its size. A
# library that stripping would break (one that patchelf rewrote) stays as it was, and test
# suites go. Bytecode is compiled once, here, not at every start of a read-only container.
RUN set -eu; \
    if [ "$STRIP" = 1 ]; then python3 /opt/build/strip.py /opt/venv "$STRIP_PROGRAM"; fi; \
    if [ "$COMPILE" = 1 ]; then python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv; fi; \
    layer /opt/venv

# What the build installed beyond its bases, on the target and on the builder (NAME:ARCH=VERSION
# lines, from apt-install): `inv build` reads it out for the provenance. Nothing of it ships.
FROM scratch AS build-packages
COPY --from=builder /opt/build/packages /

# What the venv links and the target lacks: its Debian package, as the archive names it,
# installed on the target for the runtime to carry; one that Debian lacks ends the build in
# one line. Nothing missing: nothing runs, and no network. The runtime carries, of all this
# holds, only what the app links and docker.runtime_packages: no compiler, no headers.
FROM sdists AS libs
COPY docker/elf.py docker/libraries.py /opt/build/
COPY --from=builder /opt/build/missing.json /opt/build/
RUN [ ! -s /opt/build/missing.json ] || python3 /opt/build/libraries.py --install /opt/build/missing.json

# The source, in a stage of its own: an edit rebuilds from here on, in seconds.
FROM builder AS app
COPY main.py /app/
COPY my_project/ /app/my_project/
ARG COMPILE=1
RUN set -eu; \
    if [ "$COMPILE" = 1 ]; then python3 -m compileall -q --invalidation-mode unchecked-hash /app; fi; \
    layer /app

# The suite runs on the target, against the app as the image holds it, with the stripped
# dependencies; the test tools' sdists, if any, build with docker.build_packages too.
FROM sdists AS test
COPY --from=builder /opt/venv /opt/venv
COPY --from=app /app /app
COPY requirements-test.txt /tmp/
ARG BUILD_PACKAGES=""
# hadolint ignore=SC2086 # the package list splits into one argument a package, as meant
RUN --mount=type=cache,id=my-project-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    build-tools $BUILD_PACKAGES && pip-install /tmp/requirements-test.txt
WORKDIR /app
COPY pyproject.toml ./
COPY tests/ tests/
RUN /opt/venv/bin/python -m pytest -p no:cacheprovider --cov=my_project --cov-fail-under=100 tests

# What the interpreter and the app need at run time, native code included, with the dpkg
# record of every Debian package it takes files from (listed in /rootfs.packages too): read
# off the target's files, here.
FROM builder AS rootfs
COPY docker/distroless.py /opt/build/
ARG RUNTIME_PACKAGES=""
ARG HOST_LIBRARIES=""
RUN --mount=type=bind,from=libs,target=/target \
    python3 /opt/build/distroless.py --root /target /rootfs /opt/venv $RUNTIME_PACKAGES

# The loader's cache of that tree (for ctypes.util.find_library), by the target's own ldconfig.
FROM base AS ldcache
RUN --mount=type=bind,from=rootfs,source=/rootfs,target=/rootfs,rw \
    ldconfig -r /rootfs && cp /rootfs/etc/ld.so.cache /ld.so.cache

FROM rootfs AS tree
COPY --from=ldcache /ld.so.cache /rootfs/etc/
RUN touch --date=@0 /rootfs/etc/ld.so.cache /rootfs/etc

FROM scratch AS distroless
COPY --from=tree /rootfs /

# The base with its shell, and what the distroless tree adds to it: the Debian packages it
# takes files from (libpq5 for psycopg2, say), installed, and the same unprivileged user. No
# installer: official Python images carry pip in /usr/local; Debian's python3 has none.
FROM base AS slim
# The rootfs stage is mounted whole: Podman's Buildah (1.28) cannot mount one file of a stage.
RUN --mount=type=bind,from=rootfs,target=/tmp/rootfs \
    --mount=type=bind,source=docker/apt-install,target=/usr/local/bin/apt-install \
    set -eu; \
    xargs --no-run-if-empty apt-install docker.runtime_packages < /tmp/rootfs/rootfs.packages; \
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
