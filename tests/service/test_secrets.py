"""The secret registry: registered tokens are scrubbed from any text, case-insensitively."""

from __future__ import annotations

from nanobanana_widgets.service.secrets import register_secret, scrub


def test_registered_secret_is_scrubbed_in_any_case() -> None:
    register_secret("Sk-Distinctive-Token-123")
    assert scrub("Bearer Sk-Distinctive-Token-123 and sk-distinctive-token-123") == (
        "Bearer *** and ***")
    assert scrub("nothing here") == "nothing here"
    assert scrub(None) is None
    assert scrub("") == ""


def test_short_secret_only_as_a_whole_word() -> None:
    register_secret("abc")
    assert scrub("abc") == "***"
    assert scrub("the abcdef word and abc.") == "the abcdef word and ***."


def test_blank_secrets_are_ignored() -> None:
    register_secret("")
    register_secret("   ")
    register_secret(None)
    assert scrub("   spaces stay   ") == "   spaces stay   "
