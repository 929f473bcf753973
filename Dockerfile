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
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin im

USER im
# Containers listen on all interfaces; im-rpc registers its container address in etcd.
ENV IM_HTTP_HOST=0.0.0.0 IM_RPC_HOST=0.0.0.0
EXPOSE 8080 8888
CMD ["im-http"]
