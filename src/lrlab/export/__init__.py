"""Runs and their instruments exported where users already look: TensorBoard event files and MLflow."""
