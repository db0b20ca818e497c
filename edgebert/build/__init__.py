"""CI builds: every (device, budget) of an edgebert.toml, cached, reproducible, indexed, re-checkable."""
