"""The application layer: the CLI, the embedded stack, the worker's assembly, the demo fleets, the debt report and the benchmarks."""
