# Baseline (a) of `inv bench`: the usual one-stage image of a poetry app, from the same base and
# requirements. Everything in the build context is copied, the app is installed as pip
# installs a project, pip and its venv stay in the image, nothing is stripped or pruned. The
# CA bundle and index URL, when given, are BuildKit secrets.
ARG BASE_IMAGE=python:3.13-slim
FROM ${BASE_IMAGE}
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY . /app
RUN --mount=type=secret,id=pip_cert \
    --mount=type=secret,id=pip_index_url \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL=$(cat /run/secrets/pip_index_url); export PIP_INDEX_URL; \
    fi; \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps .
ENTRYPOINT ["python"]
