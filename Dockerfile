# Restyle's Discord bot on a CUDA host: docker run --gpus all (needs the NVIDIA container toolkit).
# The same image joins a Ray cluster as a GPU node (see the README, "More than one GPU"):
#   docker run --gpus all --network host IMAGE ray start --address=HEAD:6379 --block
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/restyle/.cache/huggingface

RUN useradd --create-home --uid 10001 restyle
WORKDIR /app

# torch from the package index first: its default Linux wheels bundle the CUDA runtime. PyAV's
# wheels bundle FFmpeg, so the image needs no system packages.
RUN pip install --no-cache-dir torch==2.13.0

COPY pyproject.toml README.md ./
COPY generation ./generation
COPY bot ./bot
# The project itself, from the build context (its dependencies' bounds are in pyproject.toml),
# with Ray, so that the bot and the GPU nodes of a cluster run the very same versions.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[ray]"

USER 10001
RUN mkdir -p /home/restyle/.cache/huggingface

# Bake weights (the model and htdemucs, for stems) in at build time
# (docker build --build-arg DOWNLOAD_MODEL=melody ., or DOWNLOAD_MODEL=ace-step for ACE-Step 1.5),
# or fetch them into the cache volume later with: docker run ... restyle download melody
ARG DOWNLOAD_MODEL=""
RUN if [ -n "$DOWNLOAD_MODEL" ]; then restyle download "$DOWNLOAD_MODEL"; fi

# /data: the SQLite database, seeds and results (set data_dir = "/data" in the config).
VOLUME ["/data", "/home/restyle/.cache/huggingface"]

# The token comes from the environment: docker run -e DISCORD_TOKEN=...
CMD ["python", "-m", "bot", "--config", "/config/config.toml"]
