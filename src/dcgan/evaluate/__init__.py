"""Scores for generated images: a domain classifier's feature space and distances within it."""
