"""Dependencies: settings, database session, API-key authentication with scopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import Forbidden, Unauthorized
from service.store.keys import has_scope, verify_key
from service.store.tables import ApiKey

__all__ = ["SessionDep", "SettingsDep", "require", "get_session", "get_settings"]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="API key created with `forewarn keys create`")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def require(scope: str) -> Callable[..., ApiKey]:
    """Dependency factory: a valid API key with ``scope`` (``admin`` implies every scope).

    The scope is listed in the operation's OpenAPI ``security`` requirement
    (``{"APIKeyHeader": ["read"]}``), so clients can see which scope each operation needs.
    """

    def _dep(
        request: Request,
        session: SessionDep,
        api_key: str | None = Security(_api_key_header, scopes=[scope]),
    ) -> ApiKey:
        if not api_key:
            raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
        key = verify_key(session=session, plaintext=api_key)
        if key is None:
            raise Unauthorized("the API key is unknown, revoked or expired")
        if not has_scope(key, scope):
            raise Forbidden(f"the API key lacks the '{scope}' scope")
        request.state.api_key_prefix = key.prefix
        return key

    _dep.__name__ = f"require_{scope}"
    return _dep
