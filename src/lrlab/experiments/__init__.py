"""Experiments: tasks, the recording training loop, sweeps, executors and the SQLite store."""
