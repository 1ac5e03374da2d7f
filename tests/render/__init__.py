"""Tests of the pure HTML renderers: result cards and the history table."""
