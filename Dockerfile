# One image, two entry points: `im-http` (the gateway, the default) and `im-rpc`.
#   docker build -t im-backend .
#   docker run --rm im-backend im-rpc --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY im_common/ im_common/
COPY improto/ improto/
COPY http_svc/ http_svc/
COPY rpc_svc/ rpc_svc/
# Behind a TLS-intercepting proxy pip needs that proxy's CA: scripts/compose copies the host's
# bundle to deploy/build-ca/ca.crt when IM_BUILD_CA_BUNDLE names one (none by default: the
# folder holds only its README, and pip uses the image's own CAs).
COPY deploy/build-ca/ /tmp/build-ca/
RUN if [ -s /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
    && pip install . \
    && rm -rf /tmp/build-ca \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin im

USER im
# Containers listen on all interfaces; im-rpc registers its container address in etcd.
ENV IM_HTTP_HOST=0.0.0.0 IM_RPC_HOST=0.0.0.0
EXPOSE 8080 8888
CMD ["im-http"]
