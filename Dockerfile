# The kubedask controller image.
#
#   docker build -t kubedask-controller:0.1.0 .
#
# BASE_IMAGE is any Debian-like image with Python 3.11+ and pip. The default is the official slim
# Python image, and pip fetches the dependencies from PyPI. Offline builds (the local cluster's, see
# devcluster/controller_image.py) pass a base that already carries every dependency and setuptools,
# set PIP_INSTALL_FLAGS=--no-build-isolation and build with `--network none`: nothing is downloaded.
#
# No `# syntax=` line on purpose: an offline builder cannot fetch a frontend image, so this file
# sticks to what the builtin frontend of both the legacy builder and BuildKit understands.

ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------
# Build stage: install the project (and, with an empty base, its dependencies) into a venv.
FROM ${BASE_IMAGE} AS build

ARG PIP_INSTALL_FLAGS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

COPY pyproject.toml README.md /src/
COPY client/ /src/client/
COPY controller/ /src/controller/

# --system-site-packages lets a base that already has the dependencies satisfy them (pip then
# installs only kubedask itself); with a bare base pip installs them into the venv. The venv has no
# pip of its own: the base's pip installs into it (`--python`), so the runtime image carries no
# second copy of pip, setuptools or the source tree.
RUN python3 -m venv --without-pip --system-site-packages /opt/kubedask \
 && python3 -m pip --python /opt/kubedask/bin/python install ${PIP_INSTALL_FLAGS} "/src[controller]" \
 && /opt/kubedask/bin/python -c "import kubedask_controller, kopf"

# ---------------------------------------------------------------------------------------------
# Runtime stage: the base plus the venv, running as an unprivileged user.
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kubedask-controller" \
      org.opencontainers.image.description="Reconciles Dask clusters requested through labelled ConfigMaps" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="BSD-3-Clause" \
      org.opencontainers.image.source="https://github.com/kubedask/kubedask"

# A fixed numeric UID/GID, so `runAsNonRoot` can be verified by the kubelet without a passwd lookup;
# the passwd entry only keeps tools that ask "who am I" (getpass, ps) happy.
RUN echo 'kubedask:x:10001:10001:kubedask controller:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kubedask:x:10001:' >> /etc/group

COPY --from=build /opt/kubedask /opt/kubedask

# The root filesystem is read-only in the cluster: bytecode is compiled at install time, HOME and
# every scratch file live on the /tmp emptyDir the Deployment mounts.
ENV PATH=/opt/kubedask/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

USER 10001:10001
WORKDIR /tmp
# 8080: /healthz and /readyz; 9090: Prometheus /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "kubedask_controller"]
