"""Artifact converters, one module per format, registered in edgebert.registry.CONVERTERS."""
