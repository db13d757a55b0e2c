"""Who may write through the HTTP API: an API key (``sequencer api-keys create``) with the right scope.

The key comes as ``Authorization: Bearer KEY``, or, for inbound-parse services that can
only be given a URL, as the password of HTTP basic auth (``https://anything:KEY@host/inbound``
arrives as ``Authorization: Basic base64(anything:KEY)``; the user name is ignored). No key
or an unknown or revoked one is 401 with a ``WWW-Authenticate`` challenge; a key without
the scope is 403 (RFC 6750 section 3.1). The check runs before the route reads the body,
so a refused request stores nothing.

Writes are authenticated by default. ``create_app`` mounts every router that writes with
``mount_writes(app, router, scope)``, which attaches ``RequireKey(scope)`` to all of its
routes; a router whose writes carry their own proof is mounted with
``mount_open(app, router, why)``, which says why. ``create_app`` then calls
``unauthenticated_writes`` and refuses to build an app in which a POST, PUT, PATCH or
DELETE route has neither, so a new write endpoint mounted any other way fails every test
that builds the app, instead of going out open.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security.http import HTTPBase

try:  # FastAPI 0.16x keeps included routers nested; this walks them, with their dependencies merged in
    from fastapi.routing import iter_route_contexts as _every_route
except ImportError:  # older FastAPI copies every route, dependencies included, into app.routes
    def _every_route(routes):  # type: ignore[no-redef]
        return iter(routes)

from sequencer.core import api_keys
from sequencer.core.db import session as new_session
from sequencer.core.models import ApiKey

REALM = "sequencer"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_CHALLENGE = f'Bearer realm="{REALM}", Basic realm="{REALM}"'


class _Declared(HTTPBase):
    """A scheme shown in the OpenAPI document; the header itself is read by ``RequireKey``."""

    def __init__(self, scheme: str, name: str, description: str) -> None:
        super().__init__(scheme=scheme, scheme_name=name, description=description, auto_error=False)

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_BEARER = _Declared("bearer", "apiKey", "An API key from `sequencer api-keys create`: `Authorization: Bearer KEY`.")
_BASIC = _Declared("basic", "apiKeyInUrl", "The same key as the basic-auth password, for services that only take "
                   "a URL: https://anything:KEY@host/inbound (the user name is ignored).")


def presented_key(authorization: str | None) -> str | None:
    """The key in an ``Authorization`` header (Bearer, or the Basic password), or None."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")  # RFC 7617: the user id has no colon
        return password if colon and password else None
    return None


class RequireKey:
    """A dependency: the request must carry an unrevoked API key allowed ``scope``."""

    def __init__(self, scope: str) -> None:
        if scope not in api_keys.SCOPES:
            raise ValueError(f"unknown scope {scope!r}; the scopes are {', '.join(api_keys.SCOPES)}")
        self.scope = scope

    def __call__(
        self, request: Request, _bearer: Annotated[None, Depends(_BEARER)], _basic: Annotated[None, Depends(_BASIC)]
    ) -> ApiKey:
        key = presented_key(request.headers.get("authorization"))
        if key is None:
            raise HTTPException(401, "an API key is required (Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": _CHALLENGE})
        with new_session(request.app.state.engine) as session:
            record = api_keys.authenticate(session, request.app.state.clock.now(), key)
        if record is None:
            raise HTTPException(401, "the API key is not valid (unknown or revoked)",
                                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token", '
                                                             f'Basic realm="{REALM}"'})
        if not api_keys.allows(record, self.scope):
            raise HTTPException(403, f"the API key {record.name!r} lacks the scope {self.scope!r}",
                                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", '
                                                             f'scope="{self.scope}"'})
        return record


def require_key(scope: str) -> RequireKey:
    return RequireKey(scope)


def mount_writes(app: FastAPI, router: APIRouter, scope: str) -> None:
    """Mount ``router`` with every route requiring a key with ``scope``."""
    app.include_router(router, dependencies=[Depends(require_key(scope))])


def mount_open(app: FastAPI, router: APIRouter, why: str) -> None:
    """Mount ``router`` without keys; ``why`` says what authenticates its writes instead."""
    if not why.strip():
        raise ValueError("say why these routes need no API key")
    app.include_router(router)
    open_writes = getattr(app.state, "open_writes", {})
    open_writes.update({route.path: why for route in router.routes if isinstance(route, APIRoute)})
    app.state.open_writes = open_writes


def unauthenticated_writes(app: FastAPI) -> list[str]:
    """``METHOD path`` of every write route that neither requires a key nor was mounted open."""
    open_writes = getattr(app.state, "open_writes", {})
    found = []
    for route in _every_route(app.routes):
        writes = set(getattr(route, "methods", None) or ()) & WRITE_METHODS
        if not writes or route.path in open_writes:
            continue
        dependant = getattr(route, "dependant", None)  # a plain Starlette route has none: it is open
        if dependant is None or not any(isinstance(d.call, RequireKey) for d in dependant.dependencies):
            found.extend(f"{method} {route.path}" for method in sorted(writes))
    return found
