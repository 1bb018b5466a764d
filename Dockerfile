# tokengov: the workers, `tokengov db migrate`, `tokengov grafana sync`, the demo fleet.
#   docker build -t tokengov:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged user; its home holds the worker state (TOKENGOV_DATA_DIR).
RUN groupadd --system --gid 10001 tokengov \
    && useradd --system --uid 10001 --gid tokengov --create-home --home-dir /home/tokengov tokengov \
    && install -d -o tokengov -g tokengov /var/lib/tokengov

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tokengov ./tokengov
RUN pip install '.[server]' && rm -rf /src

USER tokengov
WORKDIR /home/tokengov
ENV TOKENGOV_DATA_DIR=/var/lib/tokengov
VOLUME ["/var/lib/tokengov"]
ENTRYPOINT ["tokengov"]
CMD ["--help"]
