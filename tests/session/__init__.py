"""The session (default client, history and emulator), the module functions and the magics."""
