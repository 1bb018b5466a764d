"""Ingestion of what agents already emit, turned into tokengov's events (server side).

:mod:`tokengov.ingest.otlp` receives OpenTelemetry GenAI spans over OTLP/HTTP. This layer
imports the core and the producers' adapters, never the streams nor the sinks.
"""
