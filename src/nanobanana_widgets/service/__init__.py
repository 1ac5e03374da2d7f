"""What the service is: its models and the one ``validate_request()``, the errors, the typed
results and the status inference. Pure: no I/O, no widgets, imports nothing above it."""
