#!/usr/bin/env bash
# Create tokengov's topics on the compose Kafka cluster, explicitly (the brokers run with
# auto.create.topics.enable=false). Idempotent: existing topics are kept; a topic with fewer
# partitions than asked is grown (Kafka cannot shrink one). Must match tokengov/core/topics.py's
# topic_specs() — tests/integration/grafana/test_compose.py checks that it does.
set -euo pipefail

KAFKA_TOPICS="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"
BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka-1:9092}"
RF="${TOPIC_REPLICATION_FACTOR:-3}"
MIN_ISR="${TOPIC_MIN_INSYNC_REPLICAS:-2}"
EVENT_PARTITIONS="${TOKENGOV_EVENT_PARTITIONS:-12}"

# ensure_topic NAME PARTITIONS [CONFIG=VALUE ...]
ensure_topic() {
    local name="$1" partitions="$2"
    shift 2
    local configs=(--config "min.insync.replicas=${MIN_ISR}")
    for c in "$@"; do configs+=(--config "$c"); done

    local current
    current="$("$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --describe --topic "$name" 2>/dev/null \
        | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1 || true)"
    if [[ -z "$current" ]]; then
        "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
            --partitions "$partitions" --replication-factor "$RF" "${configs[@]}"
        echo "created $name ($partitions partitions, rf $RF)"
    elif (( current < partitions )); then
        "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --alter --topic "$name" --partitions "$partitions"
        echo "grew $name from $current to $partitions partitions"
    else
        echo "kept $name ($current partitions)"
    fi
}

ensure_topic tokengov.events "$EVENT_PARTITIONS"
# tokengov.router-state holds the router state of alerts partition p in its partition p:
# always give both topics the same count.
ensure_topic tokengov.alerts 4
ensure_topic tokengov.decisions 1 cleanup.policy=compact min.compaction.lag.ms=0
ensure_topic tokengov.metrics 4
ensure_topic tokengov.findings 2
ensure_topic tokengov.deadletter 2
ensure_topic tokengov.silences 1 cleanup.policy=compact min.compaction.lag.ms=0
ensure_topic tokengov.router-state 4 cleanup.policy=compact min.compaction.lag.ms=0
