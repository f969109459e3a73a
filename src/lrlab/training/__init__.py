"""Training: tasks, a run config resolved once, the recording loop and the vectorised trainer."""
