"""A reproducible, experiment-tracked DCGAN pipeline."""
