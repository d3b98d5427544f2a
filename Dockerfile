# ICC liaison bot. Build: docker build -t icc-bot .
# Run: migrations first, then the bot (see README, "Running on a real homeserver").
#   docker run --rm -v icc-data:/data -v ./config:/config --env-file .env icc-bot db upgrade
#   docker run -d -v icc-data:/data -v ./config:/config --env-file .env icc-bot run

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY config ./config
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /home/icc icc \
    && mkdir -p /data /config \
    && chown icc:icc /data /config
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=icc:icc config/directory.yaml /config/directory.yaml
COPY --chown=icc:icc config/rota /config/rota
COPY --chown=icc:icc config/playbooks /config/playbooks
ENV ICC_DATA_DIR=/data \
    ICC_CONFIG_DIR=/config \
    ICC_DATABASE_URL=sqlite:////data/icc.db \
    ICC_HEALTH_ADDR=127.0.0.1:9108 \
    PYTHONUNBUFFERED=1
USER 10001
VOLUME ["/data", "/config"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request; h=os.environ.get('ICC_HEALTH_ADDR','127.0.0.1:9108'); sys.exit(0 if urllib.request.urlopen('http://'+h+'/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["icc-bot"]
CMD ["run"]
