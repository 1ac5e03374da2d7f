"""Tests of the views (panel, history strip, grid, comparison) and their thread rule."""
