# The product in one image: the prediction API, the dashboard, the job worker and the
# monitor, one entry point (deploy/image/entrypoint.sh). docs/deploy.md shows how to
# build and run it; `make image` builds it here with buildah.
#
# BASE: any Debian bookworm image with Python 3.11 and venv. Users with a registry keep
# the default; `make image` passes a base bootstrapped from Debian's archive.
ARG BASE=python:3.11-slim-bookworm

# --- dependencies: the runtime requirements in a virtual environment (a stage of its
# own, so that a change to the code does not copy the environment again).
FROM ${BASE} AS dependencies
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /src/requirements.txt
RUN pip install -r /src/requirements.txt

# --- code: the project, its compiled translations and the phone app's runtime
# (fetched and checked against its pinned SHA-512, as `make install` does).
FROM dependencies AS code
WORKDIR /src
COPY core core
COPY dashboard dashboard
COPY .streamlit/config.toml .streamlit/config.toml
RUN python -m babel.messages.frontend -q compile -d dashboard/locale -D dashboard \
    && python -m core.serving.phone_runtime

# --- runtime: the environment and the code, run as an unprivileged user.
FROM ${BASE}
RUN useradd --create-home --uid 10001 --user-group vision \
    && mkdir /data && chown vision:vision /data
COPY --from=dependencies /opt/venv /opt/venv
COPY --from=code /src /app
COPY deploy/image/entrypoint.sh /usr/local/bin/vision
COPY deploy/image/healthcheck.py /usr/local/bin/vision-healthcheck
# The registry (SQLite file and versions' folders) lives on a volume at /data unless
# DATABASE_URL and ARTIFACTS_URL point at a team's PostgreSQL and bucket.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MODEL_REGISTRY_DIR=/data
WORKDIR /app
USER vision
VOLUME /data
EXPOSE 8500 8501
# serve: GET /healthz; dashboard: Streamlit's /_stcore/health; worker, monitor: running.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/usr/local/bin/vision-healthcheck"]
ENTRYPOINT ["vision"]
CMD ["serve"]
