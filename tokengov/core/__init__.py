"""The core: the contract, decoding, pricing, policy, topics, settings, the Kafka layer and errors. Imports nothing of producers, streams, sinks or app."""
