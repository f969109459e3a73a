"""Test-session settings shared by tests/ and the doctests of src/."""

import os

# Keras 3 on the torch backend (lrlab always has torch; TensorFlow is not installed here).
os.environ.setdefault("KERAS_BACKEND", "torch")
