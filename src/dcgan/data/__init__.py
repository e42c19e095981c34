"""Getting the images: download (or a local mirror), preprocessing, and the one normalization."""
