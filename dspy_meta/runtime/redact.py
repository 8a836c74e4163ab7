"""Remove credentials from text before it is logged, checkpointed or saved.

Error messages from LM clients can quote the request URL (``https://user:password@host``,
``...?key=...``, Azure's ``&sig=...``) or echo a key ("Incorrect API key provided: ..."); every
text dspy-meta stores, logs or puts in an exception passes through `redact`. Besides the patterns
below, the value of every environment variable whose name looks secret (``OPENAI_API_KEY``) is
replaced wherever it appears.
"""

from __future__ import annotations

import os
import re

__all__ = ["redact", "is_secret_setting"]

_SECRET_WORDS = ("key", "secret", "password", "header", "credential", "auth")
_SECRET_NAMES = ("token", "access_token", "auth_token", "id_token")
# Names of URL parts that carry credentials: any name ending in key, token, secret, ... (Google's ?key=,
# ?api_key=, Azure's ?subscription-key=, ?access_key=, /key/<key>/); in a query also the short ones of
# signed URLs (Azure SAS &sig=, &se=, &sp=, &sv=), too common as path segments (/auth/) to redact there.
_SECRET_NAME = r"[\w.-]*(?:key|token|secret|password|passwd|signature|credential)"
_QUERY_NAMES = rf"{_SECRET_NAME}|sig|code|auth|se|sp|sv"
_EQUALS = r"(?:=|%3D)"  # also URL-encoded (api_key%3Dsecret, as in a URL quoted inside another)

_PATTERNS = [
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@?#]+@", re.I), r"\1***@"),  # URL userinfo (user:pass@, token@)
    (re.compile(rf"((?:[?&;]|%3F|%26)(?:{_QUERY_NAMES}){_EQUALS})[^&#\s'\"]+", re.I), r"\1***"),  # query string
    (re.compile(rf"(/{_SECRET_NAME}/)[^/?#\s'\"]+", re.I), r"\1***"),  # a path segment after its name
    (re.compile(r"\b(sk|pk|rk|ak)-[A-Za-z0-9_\-]{6,}"), "***"),  # provider-style API keys (OpenAI, Anthropic)
    (re.compile(r"\b(?:AIza[0-9A-Za-z_\-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}|"
                r"gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,})"), "***"),  # Google, AWS, GitHub, HF, Groq, xAI
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._\-+/=]{8,}"), r"\1 ***"),  # auth headers
    (re.compile(r"(?i)((?:api[_ -]?key|token|secret|password)(?:\s+provided)?\s*(?:[=:]|%3D)\s*['\"]?)"
                r"[^\s'\",}]{4,}"), r"\1***"),
]


def _environment_secrets() -> list[str]:
    return sorted((value for name, value in os.environ.items() if len(value) >= 8 and is_secret_setting(name)
                   and not name.lower().endswith(("_file", "_path", "_dir"))), key=len, reverse=True)


def redact(text: object) -> str:
    """`text` as a string with URL credentials, API keys and auth tokens replaced by ``***``."""
    result = str(text)
    for secret in _environment_secrets():
        result = result.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        result = pattern.sub(replacement, result)
    return result


def is_secret_setting(name: str) -> bool:
    """Whether an LM setting name holds a credential (``api_key``, ``extra_headers``, ``token``, ...).

    Sampling settings such as ``max_tokens`` are not secrets.
    """
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS) or lowered.endswith("_token")
