"""make demo: the emulator and JupyterLab, started and stopped together."""
