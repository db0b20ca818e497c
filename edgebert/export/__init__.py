"""The export stage: convert, verify against PyTorch, write the manifest and report, publish atomically."""
