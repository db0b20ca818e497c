"""edgebert command line."""
