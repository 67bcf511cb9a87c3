"""Copier migration, run in a project being updated: exempt its existing revisions from the lint.

PostgreSQL projects generated before `migrations/lint.py` existed (release 0.2.0 and older) get it
on update, and CI and the pre-commit hook then lint every revision. Revisions written before the
rules would fail them although they shipped long ago (a plain `CREATE INDEX` on a table that was
empty then, say). Before the new release renders, this script lists the project's revisions in
`migrations/lint-baseline.txt`, which the lint skips; every revision written after it is linted.
It does nothing for a project that has the lint already, or a baseline. Standard library only (it
runs with the Python that runs Copier).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Run as a script by Copier: its own folder holds the helpers it shares with the other migrations.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from answers import top_level_answer

LINT = Path("migrations/lint.py")
BASELINE = Path("migrations/lint-baseline.txt")
VERSIONS = Path("migrations/versions")
REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)
HEADER = """\
# Revisions written before this project had the migration lint (migrations/lint.py), listed by
# `copier update` when it brought the lint: the lint skips them, and lints every other revision.
# One revision id a line. Delete a line to have that revision linted again.
"""


def revision_ids(folder: Path) -> list[str]:
    """The `revision = "..."` of each revision file under `folder`, in file-name order."""
    found = (
        REVISION.search(path.read_text(encoding="utf-8")) for path in sorted(folder.rglob("*.py"))
    )
    return [match[1] for match in found if match]


def main(answers_file: Path) -> None:
    text = answers_file.read_text(encoding="utf-8")
    if top_level_answer(text, "database") != "postgresql" or LINT.exists() or BASELINE.exists():
        return
    revisions = revision_ids(VERSIONS)
    if not revisions:
        return
    BASELINE.write_text(
        HEADER + "".join(f"{revision}\n" for revision in revisions), encoding="utf-8"
    )
    print(
        f"note: {BASELINE} lists the {len(revisions)} revisions written before the migration"
        " lint; it skips them",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
