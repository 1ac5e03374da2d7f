"""The benchmark of nanobanana-widgets: ``python bench/run.py`` (``make bench``)."""
