"""Reference app (a): FastAPI with a bare asyncpg pool, the floor the generated app is compared to.

Same routes, status codes and JSON shape as the generated app's users routes (integer ids):
GET /users/{id}, GET /users?limit=&offset=, POST /users. One SQL statement and one round trip per
request, no ORM, no transaction of its own (asyncpg autocommit), JSON written by hand. Request
bodies are still validated by Pydantic (EmailStr, 1-100 characters of name), as in the generated app.

Run: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/db uvicorn raw_asyncpg:app
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

COLUMNS = "id, email, name, created_at, updated_at"


def _dsn() -> str:
    url = os.environ["DATABASE_URL"]
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if "+" in scheme else url  # asyncpg knows no "+driver"


pool: asyncpg.Pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    # The same capacity as the generated app's default pool (pool_size 5 + max_overflow 10).
    pool = await asyncpg.create_pool(_dsn(), min_size=5, max_size=15)
    yield
    await pool.close()


app = FastAPI(title="raw-asyncpg", lifespan=lifespan)


def _iso(value: datetime) -> str:
    # Pydantic writes an aware UTC datetime with a "Z"; do the same so the bodies are alike.
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _user(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "email": row[1],
        "name": row[2],
        "created_at": _iso(row[3]),
        "updated_at": _iso(row[4]),
    }


def _json(content: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(content, separators=(",", ":")),
        status_code=status_code,
        media_type="application/json",
    )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


@app.get("/users/{user_id}")
async def read_user(user_id: Annotated[int, Path(ge=1, le=2_147_483_647)]) -> Response:
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise HTTPException(404, "User not found")
    return _json(_user(row))


@app.get("/users")
async def list_users(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647)] = 0,
) -> Response:
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2", limit, offset
    )
    return _json([_user(row) for row in rows])


@app.post("/users", status_code=201)
async def create_user(body: UserCreate) -> Response:
    try:
        row = await pool.fetchrow(
            f"INSERT INTO users (email, name) VALUES ($1, $2) RETURNING {COLUMNS}",
            body.email,
            body.name,
        )
    except asyncpg.UniqueViolationError:
        raise HTTPException(409, "The request conflicts with existing data") from None
    return _json(_user(row), status_code=201)
