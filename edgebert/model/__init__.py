"""The model stage: edgebert's BERT, its config, loading, rewiring, sub-network specs and slicing."""
