"""Backends: one module per family, each implementing a protocol from :mod:`harness.protocols`."""
