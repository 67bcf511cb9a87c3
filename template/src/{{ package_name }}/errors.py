"""Database failures as JSON answers a client can act on, never a 500 with a traceback."""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import exc

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
"""How long a 503 asks clients to wait before they try again."""


async def conflict(request: Request, error: Exception) -> JSONResponse:
    """A unique or foreign-key constraint refused the write; the transaction was rolled back."""
    return JSONResponse(
        {"detail": "The request conflicts with existing data"},
        status_code=status.HTTP_409_CONFLICT,
    )


async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    """No usable connection: the server is down or restarting, or the pool stayed exhausted."""
    logger.warning("database unavailable for %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(
        {"detail": "The database is unavailable; try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def database_error(request: Request, error: Exception) -> JSONResponse:
    """Any other driver error: 503 if it broke the connection, else a bug (500)."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return await database_unavailable(request, error)
    return await internal_error(request, error)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse(
        {"detail": "Internal server error"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def register_error_handlers(app: FastAPI) -> None:
    """Map database exceptions to 409 and 503, and anything unexpected to a JSON 500."""
    app.add_exception_handler(exc.IntegrityError, conflict)
    # The pool's TimeoutError (not the builtin one): every connection stayed busy for pool_timeout.
    app.add_exception_handler(exc.TimeoutError, database_unavailable)
    # Could not connect, or lost the connection (server restart, network trouble, locked file).
    app.add_exception_handler(exc.OperationalError, database_unavailable)
    app.add_exception_handler(exc.InterfaceError, database_unavailable)
    app.add_exception_handler(exc.DBAPIError, database_error)
    # Some drivers raise the operating system's error when the server refuses the connection.
    app.add_exception_handler(OSError, database_unavailable)
    app.add_exception_handler(Exception, internal_error)
