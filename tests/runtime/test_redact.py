"""`redact`: every credential shape an LM client's error text (or an api_base) can hold is replaced."""

import pytest

from dspy_meta.runtime.redact import redact

SECRET = "PLANTEDsecret0042xyz"

# (text holding SECRET, what must survive around it)
SHAPES = [
    (f"https://user:{SECRET}@llm.example.invalid/v1", "https://***@llm.example.invalid/v1"),
    (f"https://{SECRET}@llm.example.invalid/v1", "https://***@llm.example.invalid/v1"),  # a token as userinfo
    (f"https://h.invalid/v1?key={SECRET}", "https://h.invalid/v1?key=***"),
    (f"https://h.invalid/v1?api-version=2024&sig={SECRET}&sv=2024", "api-version=2024&sig=***&sv=***"),
    (f"https://h.invalid/v1?subscription-key={SECRET}", "?subscription-key=***"),
    (f"https://h.invalid/v1?access_key={SECRET}&q=1", "?access_key=***&q=1"),
    (f"https://h.invalid/v1?x-amz-credential={SECRET}", "?x-amz-credential=***"),
    (f"https://h.invalid/key/{SECRET}/v1", "https://h.invalid/key/***/v1"),  # a key as a path segment
    (f"https://h.invalid/api-key/{SECRET}", "https://h.invalid/api-key/***"),
    (f"https://h.invalid/v1?q=1%26api_key%3D{SECRET}", "?q=1%26api_key%3D***"),  # URL-encoded inside a URL
    (f"redirect=https%3A%2F%2Fh%2Fv1%3Fkey%3D{SECRET}", "%3Fkey%3D***"),
    (f"api_key%3D{SECRET}", "api_key%3D***"),
    (f"Incorrect API key provided: {SECRET}. Check your key.", "Incorrect API key provided: ***"),
    (f"token={SECRET}", "token=***"),
    (f"Authorization: Bearer {SECRET}", "Bearer ***"),
    ("key sk-PLANTEDsecret0042xyz in use", "key *** in use"),
    ("google AIzaPLANTEDsecret0042xyz123456", "google ***"),
]


@pytest.mark.parametrize("text, kept", SHAPES, ids=[kept for _, kept in SHAPES])
def test_every_credential_shape_is_redacted(text, kept):
    redacted = redact(text)
    assert SECRET not in redacted and "PLANTED" not in redacted
    assert kept in redacted

