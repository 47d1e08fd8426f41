"""Email address checks, as strict as the providers are about the bare address (``local@domain.tld``).

Providers do not publish their exact grammar; both refuse what is below (no ``@``, two ``@``, spaces, a domain
without a dot or with empty labels), and that is what a delivery stage can get wrong.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

__all__ = ["is_email"]

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")


def is_email(value: Any) -> TypeGuard[str]:
    """True for a string that is a plain address; display names (``Ann <ann@x.com>``) are not addresses."""
    if not isinstance(value, str) or len(value) > 254:
        return False
    local = value.split("@", 1)[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return _EMAIL.match(value) is not None
