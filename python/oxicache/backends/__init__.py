"""Cache backends, one per module."""
