"""Grafana: dashboards as code, provisioning, and sync to a running Grafana."""
