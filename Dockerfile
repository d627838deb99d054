# The artifact in a container: `docker build -t prefix-sharing .`, then
# `docker run --rm -v "$PWD/results:/artifact/results" prefix-sharing`
# runs `invoke reproduce` and exits 0 only when every published figure matches.
#
# Stages: system (Debian's Python, the user) -> replay-env (the locked
# packages) -> project -> v1 (adds today's vLLM for `invoke compare`:
# `docker build --target v1 -t prefix-sharing-v1 .`) and replay, the default.

# Debian 12 (bookworm), slim, pinned by digest
ARG BASE_IMAGE=debian:bookworm-slim@sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171
# The user that runs the pipeline
ARG UID=1000

FROM ${BASE_IMAGE} AS system
# Python 3.11.2 from bookworm, at the versions current when this was written;
# the Debian mirror keeps only the latest, so a newer point release needs new
# pins (or --build-arg PYTHON_VERSION=...).
ARG PYTHON_VERSION=3.11.2-6+deb12u9
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates=20250419~deb12u2 \
        python3.11=${PYTHON_VERSION} \
        python3.11-venv=${PYTHON_VERSION} \
        python3-pip-whl=23.0.1+dfsg-1 \
        python3-setuptools-whl=66.1.1-1+deb12u2 \
    && rm -rf /var/lib/apt/lists/*

ENV LANG=C.UTF-8 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/artifact \
    USER=artifact \
    XDG_CACHE_HOME=/home/artifact/.cache \
    XDG_CONFIG_HOME=/home/artifact/.config \
    HF_HOME=/home/artifact/.cache/huggingface \
    MPLCONFIGDIR=/home/artifact/.cache/matplotlib \
    TRITON_CACHE_DIR=/home/artifact/.cache/triton \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    DVC_NO_ANALYTICS=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1

# The pipeline writes in /artifact and $HOME only; both are writable by any
# uid, so `docker run --user "$(id -u):$(id -g)"` works as well as the default.
ARG UID
RUN useradd --no-log-init --create-home --uid "${UID}" --user-group artifact \
    && mkdir -p "$HF_HOME" "$MPLCONFIGDIR" "$TRITON_CACHE_DIR" \
        "$XDG_CONFIG_HOME" \
    && chown -R artifact:artifact "$HOME" \
    && chmod -R a+rwX "$HOME"


FROM system AS replay-env
COPY requirements/replay.lock /opt/replay.lock
# pip's cache is a build cache (BuildKit, podman), never part of the image.
ARG PIP_CACHE_DIR=/root/.cache/pip
RUN --mount=type=cache,target=/root/.cache/pip \
    python3.11 -m venv /opt/venv \
    && pip install --no-deps --require-hashes -r /opt/replay.lock \
    && pip check


FROM replay-env AS project
ARG UID
WORKDIR /artifact
COPY --chown=${UID}:${UID} . /artifact
RUN pip install --no-deps --no-build-isolation --no-cache-dir -e . \
    && install -D -m 0644 results/published.json \
        /usr/local/share/prefix-sharing/results/published.json \
    && install -m 0755 docker/entrypoint.sh /usr/local/bin/entrypoint \
    && chmod -R a+rwX /artifact
ENTRYPOINT ["/usr/local/bin/entrypoint"]


FROM project AS v1
# A second environment that never shares a process with the first.
COPY requirements/compare.lock /opt/compare.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    python3.11 -m venv /opt/venv-v1 \
    && /opt/venv-v1/bin/pip install --no-deps --require-hashes -r /opt/compare.lock \
    && /opt/venv-v1/bin/pip install --no-deps --no-build-isolation --no-cache-dir \
        -e /artifact \
    && /opt/venv-v1/bin/pip check
ENV PREFIX_SHARING_V1_PYTHON=/opt/venv-v1/bin/python
ARG UID
USER ${UID}
CMD ["invoke", "compare"]


FROM project AS replay
ARG UID
USER ${UID}
CMD ["invoke", "reproduce"]
