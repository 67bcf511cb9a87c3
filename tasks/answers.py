"""What the Copier migrations in this folder share: reading a project's answers file.

Standard library only, as the migrations are (they run with the Python that runs Copier).
"""

from __future__ import annotations

import re


def top_level_answer(text: str, key: str) -> str | None:
    """The scalar `key: value` of a YAML answers file written by Copier (one answer a line)."""
    found = re.search(rf"^{key}: ['\"]?([^'\"\n]*)['\"]?$", text, re.MULTILINE)
    return found[1].strip() if found else None
