# fink-t2: score ZTF alerts with the shipped t2 model. Mirrors the README's install exactly.
#   docker build -t fink-t2 . && docker run --rm fink-t2
FROM python:3.11-slim

# Java 17 runtime for Spark (the pandas engine and classify() do not need it); procps for Spark's scripts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fink-t2
COPY . .
RUN python -m pip install --no-cache-dir ".[spark]"

# The README's first command: score the sample alerts and print the summary.
CMD ["fink-t2", "score", "data/alerts_sample.parquet", "--engine", "pandas", "--summary"]
