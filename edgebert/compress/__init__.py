"""Compression (LadaBERT, issue 15): factorise, prune, distil a dynamic model to fit a memory budget."""
