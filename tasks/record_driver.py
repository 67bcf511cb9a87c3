"""Copier migration, run in a project being updated: record the PostgreSQL driver it uses.

Projects generated before the `driver` question (release 0.2.0 and older) have no `driver` answer:
asyncpg when async, psycopg2 when sync. Without the answer, `copier update` would give them the
question's default of the day, and switch the driver, its dependency and its lock file behind the
user's back whenever that default changes. This script writes the driver the project uses into its
answers file before the new release renders, so the update keeps it; `--data driver=...` still
changes it on purpose. Standard library only (it runs with the Python that runs Copier).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script by Copier: its own folder holds the helpers it shares with the other migrations.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from answers import top_level_answer

DRIVERS_BEFORE_THE_QUESTION = {"async": "asyncpg", "sync": "psycopg2"}


def main(answers_file: Path) -> None:
    text = answers_file.read_text(encoding="utf-8")
    if top_level_answer(text, "database") != "postgresql" or top_level_answer(text, "driver"):
        return
    mode = top_level_answer(text, "sqlalchemy_mode") or "async"
    driver = DRIVERS_BEFORE_THE_QUESTION[mode]
    answers_file.write_text(f"{text.rstrip()}\ndriver: {driver}\n", encoding="utf-8")
    print(f"note: recorded driver={driver}, the driver this project uses", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
