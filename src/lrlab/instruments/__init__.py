"""Instruments that read a learning rate while training runs (update-to-weight ratio, sharpness, gradient noise scale, spikes, the LR audit)."""
