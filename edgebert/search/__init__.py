"""Search beyond DynaBERT's grid (issue 17): per-layer sub-networks under a device's budgets.

space.py: what may be searched (per-layer heads and FFN width, any subset of layers); quality.py: measured
quality on a sample and a small predictor fitted on it; evolution.py: OFA/HAT-style evolutionary search
against the device's latency and memory models, returning a Pareto front.
"""
