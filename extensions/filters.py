"""Jinja filters the questions use to derive names.

`copier.yml` derives `project_slug` from `project_name` and `package_name` from `project_slug`
with these filters, so the rules live in typed Python rather than in long Jinja expressions.
"""

from __future__ import annotations

import re
import unicodedata

from jinja2 import Environment
from jinja2.ext import Extension

# Latin letters that Unicode does not decompose into an ASCII letter plus accents (U+0131 is the
# dotless i).
_LATIN_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "ø": "o",
        "œ": "oe",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "\u0131": "i",
    }
)

PACKAGE_PREFIX = "app_"
"""Put before a package name that would start with a digit (Python names cannot)."""


def ascii_slug(name: str) -> str:
    """`42 Über Service!` -> `42-uber-service`: ASCII letters and digits joined by single hyphens.

    Accented letters lose their accents, a few Latin letters are spelled out (ß -> ss), and
    letters of other scripts are dropped.
    """
    latin = unicodedata.normalize("NFKD", name.lower().translate(_LATIN_LETTERS))
    ascii_text = latin.encode("ascii", "ignore").decode().lower()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_text))


def package_name(slug: str) -> str:
    """`billing-api` -> `billing_api`; `42-uber-service` -> `app_42_uber_service`."""
    name = slug.replace("-", "_")
    return PACKAGE_PREFIX + name if name[:1].isdigit() else name


class NameFilters(Extension):
    """Registers the filters `ascii_slug` and `package_name`."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["ascii_slug"] = ascii_slug
        environment.filters["package_name"] = package_name
