# syntax=docker/dockerfile:1
# fastric in a container image: Python with fastric installed, ready for a function's code.
#
#   docker build -t fastric .
#   docker run --rm -p 9000:8080 -v "$PWD/app.py:/var/task/app.py:ro" fastric app.handler
#   curl -d '{}' http://localhost:9000/2015-03-31/functions/function/invocations
#
# On Lambda (AWS_LAMBDA_RUNTIME_API set) fastric serves the function's invocations; anywhere else it
# serves them itself, on the endpoint AWS's runtime interface emulator offers, on port 8080.
# A function's image starts FROM this one, copies its code into /var/task and names its handler in
# CMD. The release workflow hands in the wheels it has already built with
# `--build-context wheels=dist`, so the image holds exactly the published files; a plain build
# compiles its own in the first stage.

FROM rust:1.95.0-slim-bookworm AS build

ARG MATURIN_VERSION=1.16.0

# maturin needs a Python to run from, in a virtual environment since Debian's own refuses pip;
# libjpeg-turbo, built from source into the extension, needs CMake, make and NASM.
# Debian replaces package versions with each security fix, so the base image tag pins them instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv cmake make nasm \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/maturin \
    && /opt/maturin/bin/pip install --no-cache-dir "maturin==${MATURIN_VERSION}"

WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY src/ src/
COPY python/ python/

# One abi3 wheel serves every Python from 3.9 on; --locked builds what Cargo.lock names.
RUN /opt/maturin/bin/maturin build --release --locked --out /dist

FROM scratch AS wheels
COPY --from=build /dist/ /

FROM python:3.13.7-slim-bookworm

# LAMBDA_TASK_ROOT is where Lambda functions keep their code, first on the import path. In a
# container the local endpoint has to listen on every interface for `docker run -p` to reach it.
ENV LAMBDA_TASK_ROOT=/var/task \
    FASTRIC_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
WORKDIR /var/task

# The wheels folder may hold both architectures' wheels; each platform installs its own, and the
# wheel itself never lands in a layer of the image.
RUN --mount=type=bind,from=wheels,target=/tmp/wheels \
    pip install --no-cache-dir /tmp/wheels/fastric-*_"$(uname -m)".whl

EXPOSE 8080
ENTRYPOINT ["python", "-m", "fastric"]
CMD ["app.handler"]
