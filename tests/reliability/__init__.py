"""The reliability suite: soak, crash, secrets, fuzzing and a catalogue of bad inputs."""
