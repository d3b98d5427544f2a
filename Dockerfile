# ICC liaison bot. Build: docker build -t icc-bot .
# Run: migrations first, then the bot (see README, "Running in production"; deploy/compose.yaml).
#   docker run --rm -v icc-data:/data -v ./config:/config --env-file .env icc-bot db upgrade
#   docker run -d -v icc-data:/data -v ./config:/config --env-file .env icc-bot run

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY config ./config
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# Pango and a font for the after-action review's PDF (WeasyPrint).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --create-home --home-dir /home/icc icc \
    && mkdir -p /data /config \
    && chown icc:icc /data /config
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=icc:icc config/directory.yaml /config/directory.yaml
COPY --chown=icc:icc config/rota /config/rota
COPY --chown=icc:icc config/playbooks /config/playbooks
# Inside the container the endpoints listen on every interface, so that they can be published
# (`-p`) and scraped; choose on the host who reaches them. /metrics and /readyz are for the
# monitoring network only.
# No ICC_DATABASE_URL here, so that ICC_DATABASE_URL_FILE can be used: from WORKDIR /, the bot's
# default, sqlite:///data/icc.db, is /data/icc.db on the data volume.
WORKDIR /
ENV ICC_DATA_DIR=/data \
    ICC_CONFIG_DIR=/config \
    ICC_HEALTH_ADDR=0.0.0.0:9108 \
    ICC_WEB_ADDR=0.0.0.0:8080 \
    PYTHONUNBUFFERED=1
USER 10001
VOLUME ["/data", "/config"]
# 8080: the web endpoint (ack links, inbound SMS; with ICC_PUBLIC_URL); 9108: /livez /readyz /metrics
EXPOSE 8080 9108
# Liveness: the process answers, a standby included. Readiness (/readyz, `icc-bot probe ready`)
# is 200 on the active instance only; route traffic with it, never restart on it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["icc-bot", "probe", "live"]
ENTRYPOINT ["icc-bot"]
CMD ["run"]
