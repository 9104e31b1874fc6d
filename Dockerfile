# The calo_assets code image: Python 3.11 on Debian bookworm, with Debian's chromium for the chart images.

# The wheel is built in a stage of its own: the compiled part of the parse needs gcc, the image does not.
FROM python:3.11-slim-bookworm AS wheel
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY calo_assets ./calo_assets
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
    && rm -rf /var/lib/apt/lists/*

ENV BROWSER_PATH=/usr/bin/chromium \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CALO_LOG_DIR=/data/logs \
    CALO_WAREHOUSE_DIR=/data/warehouse \
    CALO_REPORT_DIR=/data/reports

# Only the installed package, not its sources: a calo_assets folder here would shadow it (no compiled part).
WORKDIR /opt/calo_assets
COPY workspace.yaml ./
COPY data/sample-logs ./data/sample-logs
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# The deployment's Dagster instance (PostgreSQL storage from environment variables) and workspace.
ENV DAGSTER_HOME=/opt/dagster/home
COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/home/

# Runs as an unprivileged user; the volumes for logs, warehouse and reports are mounted under /data.
RUN useradd --create-home --uid 1000 calo && mkdir -p /data && chown -R calo /data /opt/dagster/home
USER calo

CMD ["calo-report"]
