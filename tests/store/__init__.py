"""Tests of the history store: storage, views, exports, the recorder, resume and replay."""
