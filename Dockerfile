# apitokenproxy: slim image, unprivileged user, database on a volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY apitokenproxy ./apitokenproxy
RUN pip install '.[postgres]' && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/apitokenproxy apitokenproxy \
    && mkdir -p /var/lib/apitokenproxy /etc/apitokenproxy \
    && chown apitokenproxy /var/lib/apitokenproxy
VOLUME ["/var/lib/apitokenproxy"]

USER apitokenproxy
WORKDIR /var/lib/apitokenproxy
EXPOSE 8080

# The health check reads the same configuration as the server, so it follows
# listen.port and listen.tls instead of assuming 8080.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["apitokenproxy", "health", "--config", "/etc/apitokenproxy/config.yaml"]

# SIGTERM lets requests in flight finish for up to 30 s: give the container
# longer than that before it is killed (docker stop -t 40, or
# stop_grace_period: 40s in compose, as deploy/docker-compose.yml does).
STOPSIGNAL SIGTERM
ENTRYPOINT ["apitokenproxy"]
CMD ["serve", "--config", "/etc/apitokenproxy/config.yaml"]
