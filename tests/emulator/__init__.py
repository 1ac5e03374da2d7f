"""The emulator: its protocol over a real socket, its faults, callbacks, images and CLI."""
