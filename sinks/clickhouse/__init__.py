"""ClickHouse history: schema, writer, store, query endpoint, reports."""
