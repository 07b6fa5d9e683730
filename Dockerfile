# syntax=docker/dockerfile:1
# Multi-stage build: the virtualenv is built in a builder stage, the runtime is slim and non-root.
#   docker build -t forewarn .
#   docker run -p 8000:8000 -v forewarn:/var/lib/forewarn forewarn          # API on SQLite
#   docker run forewarn scheduler | keys create --name ops --scopes admin   # other commands
# deploy/compose.yaml runs it on PostgreSQL with a scheduler and a Dask cluster (docs/deploy.md).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY models ./models
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    FOREWARN_DATABASE_URL=sqlite:////var/lib/forewarn/forewarn.db \
    FOREWARN_CATEGORIES_FILE=/app/data/samples/categories.yaml \
    FOREWARN_REGIONS_FILE=/app/data/samples/regions.yaml \
    FOREWARN_SAMPLES_DIR=/app/data/samples \
    FOREWARN_CHANNELS__FILE_DIR=/var/lib/forewarn/outbox
RUN useradd --system --uid 10001 --home /var/lib/forewarn forewarn \
 && mkdir -p /var/lib/forewarn && chown forewarn /var/lib/forewarn
COPY --from=build /opt/venv /opt/venv
COPY data/samples /app/data/samples
WORKDIR /var/lib/forewarn
USER forewarn
VOLUME ["/var/lib/forewarn"]
EXPOSE 8000
# The Stan model ships compiled inside the prophet wheel (no toolchain in the image); one tiny
# fit proves it loads and runs here, as the non-root user, or the build fails.
RUN python -c "import logging, pandas as pd, prophet; logging.disable(logging.INFO); \
m = prophet.Prophet(uncertainty_samples=0); \
m.fit(pd.DataFrame({'ds': pd.date_range('2024-01-01', periods=60), 'y': [i % 7 for i in range(60)]})); \
assert len(m.predict(m.make_future_dataframe(7))) == 67"
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"
ENTRYPOINT ["forewarn"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
