# syntax=docker/dockerfile:1
# Multi-stage build: wheels in a builder, a slim non-root runtime.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY models ./models
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    FOREWARN_DATABASE_URL=sqlite:////var/lib/forewarn/forewarn.db \
    FOREWARN_CATEGORIES_FILE=/app/data/samples/categories.yaml \
    FOREWARN_REGIONS_FILE=/app/data/samples/regions.yaml \
    FOREWARN_SAMPLES_DIR=/app/data/samples
RUN useradd --system --uid 10001 --home /var/lib/forewarn forewarn \
 && mkdir -p /var/lib/forewarn && chown forewarn /var/lib/forewarn
COPY --from=build /opt/venv /opt/venv
COPY data/samples /app/data/samples
WORKDIR /var/lib/forewarn
USER forewarn
EXPOSE 8000
# the Stan model ships inside the prophet wheel; this fails the build if it cannot load
RUN python -c "from prophet.models import StanBackendEnum; import prophet; prophet.Prophet()"
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
ENTRYPOINT ["forewarn"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
