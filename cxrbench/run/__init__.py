"""The run layer: configuration and suites, jobs, the harness, and the executors."""
