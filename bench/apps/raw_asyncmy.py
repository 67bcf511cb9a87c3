"""Reference app (a) on MariaDB: FastAPI with a bare asyncmy pool, the floor the generated MariaDB
apps are compared to; the MariaDB twin of raw_asyncpg.py.

Same routes, status codes and JSON shape as the generated app's users routes (integer ids):
GET /users/{id}, GET /users?limit=&offset=, POST /users. One SQL statement and one round trip per
request (POST uses MariaDB's INSERT ... RETURNING), no ORM, autocommit, JSON written by hand.
Request bodies are still validated by Pydantic (EmailStr, 1-100 characters of name), as in the
generated app. Each connection's session runs in UTC, as the generated app's do, so the server's
NOW(6) defaults and the naive DATETIME columns hold UTC.

Run: DATABASE_URL=mariadb://user:password@127.0.0.1:3306/db uvicorn raw_asyncmy:app
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import asyncmy
from asyncmy.errors import IntegrityError
from fastapi import FastAPI, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

COLUMNS = "id, email, name, created_at, updated_at"
DUPLICATE_ENTRY = 1062
"""MariaDB's error number for a duplicate key (ER_DUP_ENTRY)."""

pool: asyncmy.Pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    url = urlsplit(os.environ["DATABASE_URL"])  # mariadb:// or mariadb+driver://: only the parts
    # The same capacity as the generated app's default pool (pool_size 5 + max_overflow 10).
    pool = await asyncmy.create_pool(
        minsize=5,
        maxsize=15,
        host=url.hostname,
        port=url.port or 3306,
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
        database=url.path.lstrip("/"),
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )
    yield
    pool.close()
    await pool.wait_closed()


app = FastAPI(title="raw-asyncmy", lifespan=lifespan)


def _iso(value: datetime) -> str:
    # The columns hold naive UTC; Pydantic writes the generated app's aware UTC datetimes with a "Z".
    return value.isoformat() + "Z"


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


async def _fetch(sql: str, *args: Any) -> tuple[Any, ...]:
    async with pool.acquire() as connection, connection.cursor() as cursor:
        await cursor.execute(sql, args)
        return await cursor.fetchall()


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


@app.get("/users/{user_id}")
async def read_user(user_id: Annotated[int, Path(ge=1, le=2_147_483_647)]) -> Response:
    rows = await _fetch(f"SELECT {COLUMNS} FROM users WHERE id = %s", user_id)
    if not rows:
        raise HTTPException(404, "User not found")
    return _json(_user(rows[0]))


@app.get("/users")
async def list_users(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647)] = 0,
) -> Response:
    rows = await _fetch(
        f"SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT %s OFFSET %s", limit, offset
    )
    return _json([_user(row) for row in rows])


@app.post("/users", status_code=201)
async def create_user(body: UserCreate) -> Response:
    try:
        rows = await _fetch(
            f"INSERT INTO users (email, name) VALUES (%s, %s) RETURNING {COLUMNS}",
            body.email,
            body.name,
        )
    except IntegrityError as error:
        if error.args[0] != DUPLICATE_ENTRY:
            raise
        raise HTTPException(409, "The request conflicts with existing data") from None
    return _json(_user(rows[0]), status_code=201)
