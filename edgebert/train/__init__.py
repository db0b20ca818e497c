"""The training stage: DynaBERT's width and width x depth distillation, and the quality table."""
