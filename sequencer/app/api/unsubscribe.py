"""RFC 8058 one-click unsubscribe: ``POST /u/{token}`` opts out, ``GET`` only asks.

Mailbox providers POST ``List-Unsubscribe=One-Click`` to the URL in the
``List-Unsubscribe`` header without cookies, a login or following redirects, so the
POST does the whole job in the request and answers 200 directly. The body is not
required (some clients send none); the signed token alone says who opts out. A GET
never changes anything, because link scanners and mail-security proxies fetch every
URL in a message; it shows a page whose button makes the POST.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse

from sequencer.app.api import NowDep, SessionDep, SettingsDep
from suppression.store import unsubscribe
from suppression.tokens import InvalidToken, read_token

router = APIRouter(tags=["unsubscribe"])

SOURCE = "one-click"
_INVALID = "This unsubscribe link is not valid. Reply to the email and ask to be removed."

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Unsubscribe</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto;">
<h1>Unsubscribe</h1>
<p>Stop all emails to <strong>{address}</strong>?</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
</body></html>
"""


@router.post("/u/{token}", response_class=PlainTextResponse)
def one_click(
    token: str, session: SessionDep, settings: SettingsDep, now: NowDep
) -> PlainTextResponse:
    """Record the opt-out now; a repeat is still 200 and changes nothing."""
    try:
        address = read_token(settings.secret_key, token)
    except InvalidToken:
        return PlainTextResponse(_INVALID, status_code=400)
    unsubscribe(session, now, address, SOURCE)
    return PlainTextResponse(f"{address} has been unsubscribed. You will get no more emails.")


@router.get("/u/{token}", response_class=HTMLResponse)
def confirm_page(token: str, settings: SettingsDep) -> HTMLResponse:
    """A confirmation page; fetching it unsubscribes no one."""
    try:
        address = read_token(settings.secret_key, token)
    except InvalidToken:
        return HTMLResponse(f"<!doctype html><p>{escape(_INVALID)}</p>", status_code=400)
    page = _PAGE.format(address=escape(address))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
