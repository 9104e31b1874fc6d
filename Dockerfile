# The calo_assets code image: Python 3.11 on Debian bookworm, with Debian's chromium for the chart images.
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

WORKDIR /opt/calo_assets
COPY pyproject.toml README.md workspace.yaml ./
COPY calo_assets ./calo_assets
COPY data/sample-logs ./data/sample-logs
RUN pip install --no-cache-dir .

# The deployment's Dagster instance (PostgreSQL storage from environment variables) and workspace.
ENV DAGSTER_HOME=/opt/dagster/home
COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/home/

# Runs as an unprivileged user; the volumes for logs, warehouse and reports are mounted under /data.
RUN useradd --create-home --uid 1000 calo && mkdir -p /data && chown -R calo /data /opt/dagster/home
USER calo

CMD ["calo-report"]
