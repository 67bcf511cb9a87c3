"""Reference app (c): FastAPI + async SQLAlchemy as the seed tutorials teach it (/work/shared/seeds).

The engine, session factory, `get_db` and read route of "SQLAlchemy: Sessions & Models" (seed 000):
`pool_size=20, max_overflow=10, pool_pre_ping=True, pool_recycle=3600`, `async_sessionmaker(
expire_on_commit=False, autoflush=False)`, a `get_db` that commits after `yield` and rolls back on
an exception, `select(User).where(...)` with `scalar_one_or_none()`, and `UserResponse.model_validate`.
The list and the create follow the other seeds (`result.scalars().all()`; `session.add` then `flush`
for the new id, seed 003), the model seed 000's (timestamps set in Python) with the integer keys of
seeds 001 and 004. Same routes and JSON shape as the other reference apps (integer ids); the list
has the generated app's ORDER BY so the SQL matches. No handler for IntegrityError: a duplicate email
is a 500, as in the tutorials.

Two fixes, where the tutorial is plainly broken (both in /work/shared/FIELD_NOTES.md):
- `Depends(get_db, scope="function")` instead of `Depends(get_db)`. Since FastAPI 0.118 a `yield`
  dependency's teardown runs after the response is sent: the tutorial's commit would come after
  the client has its 201 (a failed commit loses an acknowledged row), and under load the commits
  queue up behind new requests.
- `DateTime(timezone=True)` on the timestamps, as seed 004 declares them. Seed 000's bare
  `Mapped[datetime]` is TIMESTAMP WITHOUT TIME ZONE, and asyncpg refuses its aware default on every
  insert ("can't subtract offset-naive and offset-aware datetimes").
The URL comes from DATABASE_URL with the driver spelled out, as the tutorial's literal URL spells it.

Run: DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/db uvicorn seed_tutorial:app
"""

import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, EmailStr
from sqlalchemy import DateTime, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _url() -> str:
    scheme, sep, rest = os.environ["DATABASE_URL"].partition("://")
    return (
        "postgresql+asyncpg" + sep + rest
        if scheme in {"postgres", "postgresql"}
        else scheme + sep + rest
    )


# Create async engine - ONE per application
engine = create_async_engine(
    _url(),
    pool_size=20,
    max_overflow=10,
    pool_pre_ping=True,
    pool_recycle=3600,
    echo=False,
)

# Session factory
async_session_factory = async_sessionmaker(
    engine,
    class_=AsyncSession,
    expire_on_commit=False,  # Prevent lazy load issues
    autoflush=False,
)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )


class UserCreate(BaseModel):
    email: EmailStr
    name: str


class UserResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


async def get_db() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_factory() as session:
        try:
            yield session
            await session.commit()
        except Exception:
            await session.rollback()
            raise


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # Shutdown: dispose engine
    await engine.dispose()


app = FastAPI(title="seed-tutorial", lifespan=lifespan)


@app.get("/users/{user_id}")
async def get_user(
    user_id: int, db: AsyncSession = Depends(get_db, scope="function")
) -> UserResponse:
    result = await db.execute(select(User).where(User.id == user_id))
    user = result.scalar_one_or_none()
    if not user:
        raise HTTPException(404, "User not found")
    return UserResponse.model_validate(user)


@app.get("/users")
async def list_users(
    offset: int = 0, limit: int = 20, db: AsyncSession = Depends(get_db, scope="function")
) -> list[UserResponse]:
    result = await db.execute(
        select(User).order_by(User.created_at, User.id).offset(offset).limit(limit)
    )
    users = result.scalars().all()
    return [UserResponse.model_validate(user) for user in users]


@app.post("/users", status_code=201)
async def create_user(
    body: UserCreate, db: AsyncSession = Depends(get_db, scope="function")
) -> UserResponse:
    user = User(email=body.email, name=body.name)
    db.add(user)
    await db.flush()  # assigns user.id without committing
    return UserResponse.model_validate(user)
