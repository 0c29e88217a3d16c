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

# The image has no curl; Python's standard library asks the health endpoint.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/__apitokenproxy/health', timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["apitokenproxy"]
CMD ["serve", "--config", "/etc/apitokenproxy/config.yaml"]
