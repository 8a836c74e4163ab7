"""Remove credentials from text before it is logged, checkpointed or saved.

Error messages from LM clients can quote the request URL (``https://user:password@host``)
or echo a key; every error text dspy-meta stores or logs passes through `redact`.
"""

from __future__ import annotations

import re

__all__ = ["redact", "is_secret_setting"]

_SECRET_WORDS = ("key", "secret", "password", "header", "credential", "auth")
_SECRET_NAMES = ("token", "access_token", "auth_token", "id_token")

_PATTERNS = [
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.I), r"\1***@"),  # URL userinfo
    (re.compile(r"\b(sk|pk|rk|ak)-[A-Za-z0-9_\-]{6,}"), "***"),  # provider-style API keys
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._\-+/=]{8,}"), r"\1 ***"),  # auth headers
    (re.compile(r"(?i)((?:api[_-]?key|token|secret|password)\s*[=:]\s*['\"]?)[^\s'\",}]{4,}"), r"\1***"),
]


def redact(text: object) -> str:
    """`text` as a string with URL credentials, API keys and auth tokens replaced by ``***``."""
    result = str(text)
    for pattern, replacement in _PATTERNS:
        result = pattern.sub(replacement, result)
    return result


def is_secret_setting(name: str) -> bool:
    """Whether an LM setting name holds a credential (``api_key``, ``extra_headers``, ``token``, ...).

    Sampling settings such as ``max_tokens`` are not secrets.
    """
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)
