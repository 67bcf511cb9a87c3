"""Reference app (b): FastAPI + async SQLAlchemy written the way FastAPI's SQL tutorial teaches it.

A session dependency with `yield`, `session.get`, `response_model`, commit then refresh after a
create; the engine with its defaults (pool 5 + 10 overflow, no pre-ping). Same routes and JSON shape
as the generated app's users routes (integer ids); the list has the same ORDER BY so the SQL matches.

Run: DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/db uvicorn tutorial_sqla:app
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict, EmailStr
from sqlalchemy import DateTime, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _url() -> str:
    scheme, sep, rest = os.environ["DATABASE_URL"].partition("://")
    return (
        "postgresql+asyncpg" + sep + rest
        if scheme in {"postgres", "postgresql"}
        else scheme + sep + rest
    )


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class UserCreate(BaseModel):
    email: EmailStr
    name: str


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


engine = create_async_engine(_url())
SessionLocal = async_sessionmaker(engine)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = FastAPI(title="tutorial-sqlalchemy", lifespan=lifespan)


@app.post("/users", status_code=201, response_model=UserPublic)
async def create_user(user: UserCreate, session: SessionDep) -> User:
    db_user = User(**user.model_dump())
    session.add(db_user)
    await session.commit()
    await session.refresh(db_user)
    return db_user


@app.get("/users", response_model=list[UserPublic])
async def read_users(
    session: SessionDep, offset: int = 0, limit: Annotated[int, Query(le=100)] = 20
) -> list[User]:
    users = await session.scalars(
        select(User).order_by(User.created_at, User.id).offset(offset).limit(limit)
    )
    return list(users.all())


@app.get("/users/{user_id}", response_model=UserPublic)
async def read_user(user_id: int, session: SessionDep) -> User:
    user = await session.get(User, user_id)
    if not user:
        raise HTTPException(status_code=404, detail="User not found")
    return user
