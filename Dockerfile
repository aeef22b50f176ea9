# relay container image: builds the package into a venv, ships it on a slim base as a non-root user.
#   docker build -t relay .
#   docker run -p 8080:8080 -e SLACK_BOT_TOKEN=... -v relay-data:/app/data relay
# Config and templates live in /etc/relay and can be replaced by bind mounts:
#   -v ./config.yaml:/etc/relay/config.yaml:ro -v ./templates:/etc/relay/templates:ro
# No secrets are baked in: the config reads them from the environment at start.

# ---- build: dependencies first (cached until pyproject.toml changes), then relay itself ----
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# /opt/relay, not /opt/venv: some python base images already use /opt/venv for themselves.
RUN python -m venv /opt/relay
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > requirements.txt \
 && /opt/relay/bin/pip install -r requirements.txt
COPY README.md ./
COPY relay/ relay/
COPY config.example.yaml ./
COPY templates/ templates/
# the installed package must carry its templates and samples: check the example config with it
RUN /opt/relay/bin/pip install --no-deps . \
 && cd / && /opt/relay/bin/relay check --config /src/config.example.yaml >/dev/null

# ---- runtime ----
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/relay/bin:$PATH \
    PORT=8080 \
    RELAY_CONFIG=/etc/relay/config.yaml
# A fixed uid/gid so a mounted volume's ownership is predictable across rebuilds and hosts.
RUN groupadd --system --gid 10001 relay \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin relay
COPY --from=build /opt/relay /opt/relay
COPY config.example.yaml /etc/relay/config.yaml
COPY templates/ /etc/relay/templates/
WORKDIR /app
# The SQLite outbox (./data/relay.db relative to /app) must survive restarts: keep it on a volume.
RUN mkdir -p /app/data && chown -R 10001:10001 /app
VOLUME /app/data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]
# relay drains in-flight deliveries on SIGTERM (give it ~30 s before SIGKILL).
STOPSIGNAL SIGTERM
# exec form: relay is PID 1 and receives SIGTERM itself; it reads PORT and RELAY_CONFIG from the env.
CMD ["relay", "serve"]
