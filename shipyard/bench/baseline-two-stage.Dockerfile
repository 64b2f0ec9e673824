# Baseline (b) of `inv bench` and of the corpus: the usual two-stage image of a poetry app, from
# the same base and requirements. A builder installs the dependencies into a venv (with a
# compiler and the headers in BUILD_PACKAGES, where some build from source), then the app as
# pip installs a project, built by its own backend; a fresh stage of the same base copies the
# venv. No stripping, no bytecode tricks, no distroless tree. The CA bundle and index URL,
# when given, are BuildKit secrets.
ARG BASE_IMAGE=python:3.13-slim

FROM ${BASE_IMAGE} AS builder
ARG BUILD_PACKAGES=""
# hadolint ignore=DL3008,SC2086 # unpinned and split: what a plain build would do, as meant
RUN if [ -n "$BUILD_PACKAGES" ]; then \
        apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev $BUILD_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY requirements.txt /tmp/
RUN --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL=$(cat /run/secrets/pip_index_url); export PIP_INDEX_URL; \
    fi; \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -r /tmp/requirements.txt
COPY . /src
RUN --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL=$(cat /run/secrets/pip_index_url); export PIP_INDEX_URL; \
    fi; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src

FROM ${BASE_IMAGE}
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=builder /opt/venv /opt/venv
ENTRYPOINT ["python"]
