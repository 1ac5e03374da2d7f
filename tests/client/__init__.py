"""Tests of the HTTP client: requests, the retry policy, the poller, listeners."""
