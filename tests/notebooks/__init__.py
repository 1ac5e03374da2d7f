"""The tutorial notebooks, the Binder environment and the benchmark smoke run."""
