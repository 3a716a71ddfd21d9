# The cryptoetl image, in two stages:
#   builder  builds the cryptoetl wheel from the sources and installs it, with its dependencies,
#            into a virtual environment at /opt/cryptoetl (what tests/e2e/test_deploy_wheel.py does);
#   runtime  a slim Python with only that environment, run by a non-root user that owns nothing.
# No secret is baked in: settings and secrets come from the environment (compose.yaml, .env).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheel is built from; .dockerignore keeps everything else out of the context.
COPY pyproject.toml README.md ./
COPY src/ src/
# The environment is created without pip and filled by the base image's pip (--python), so it
# holds the application and its dependencies and nothing to build or install with. (No BuildKit
# cache mount: the file builds with the classic builder and docker-compose v1 too.)
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv --without-pip /opt/cryptoetl \
 && python -m pip --python /opt/cryptoetl/bin/python install /wheels/cryptoetl-*.whl

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cryptoetl" \
      org.opencontainers.image.description="Keeps a PostgreSQL history of cryptocurrency market data fresh and serves it over a REST API." \
      org.opencontainers.image.licenses="MIT"
# A system user with no home and no shell. The code belongs to root and is only read by it; the
# service writes nothing to disk (its state is in PostgreSQL), so it needs no writable path.
RUN groupadd --system --gid 10001 cryptoetl \
 && useradd --system --uid 10001 --gid cryptoetl --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cryptoetl
COPY --from=builder /opt/cryptoetl /opt/cryptoetl
ENV PATH=/opt/cryptoetl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000
# Relative paths (CSV_FILE_PATH=data/sample.csv) resolve here; compose mounts ./data read-only.
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Healthy only on a 2xx: urlopen raises on a 503 (database unreachable) or no answer, and the
# uncaught exception exits 1. Plain Python, so the slim image needs no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('API_PORT', '8000') + '/api/v1/health', timeout=4)"]
# `docker run IMAGE` serves; `docker compose exec api cryptoetl migrate` and the like also work.
ENTRYPOINT ["cryptoetl"]
CMD ["serve"]
