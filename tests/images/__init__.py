"""Tests of image I/O: the normaliser, downloads, thumbnails and metadata."""
