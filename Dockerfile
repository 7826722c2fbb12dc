# syntax=docker/dockerfile:1
#
# GridLink image: one image, four components. The container runs `gridlink run <component>`:
#
#   docker build -t gridlink:dev .
#   docker run gridlink:dev run gateway          (the default command)
#   docker run gridlink:dev run authz            (or transactions, commands)
#   docker run gridlink:dev stations add CP-1    (admin commands use the same entry point)
#
# Stage 1 installs the project into a virtualenv; stage 2 copies only that virtualenv onto a
# clean slim Python, so no compiler, pip cache or source tree reaches the running image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gridlink
WORKDIR /src
# .dockerignore lets only pyproject.toml, README.md and the packages into the context.
COPY . .
RUN /opt/gridlink/bin/pip install . \
 && /opt/gridlink/bin/gridlink --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="gridlink" \
      org.opencontainers.image.description="GridLink OCPP 1.6-J CSMS: gateway, authz, transactions, commands" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 gridlink \
 && useradd --system --uid 10001 --gid gridlink --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin gridlink
COPY --from=builder /opt/gridlink /opt/gridlink
ENV PATH=/opt/gridlink/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Numeric so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# 9000: gateway (OCPP WebSockets + /healthz /readyz /metrics); 9100: services' probes/metrics.
EXPOSE 9000 9100 9180
# Python is PID 1 and installs its own SIGTERM handler (graceful drain), so no init is needed.
ENTRYPOINT ["gridlink"]
CMD ["run", "gateway"]
