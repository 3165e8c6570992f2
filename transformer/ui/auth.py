"""Who may open the page: anyone on a loopback-only server; otherwise a token or basic-auth pair.

The rule follows the servers' interface (``bind_host``): bound to loopback (``audioguard serve``'s
default) only this machine reaches the page, so it is open; bound to another interface (0.0.0.0 in
a container) the page and its data endpoints answer 401 with ``WWW-Authenticate`` unless the
request carries the token (``Authorization: Bearer``, or the page's cookie set by ``POST
/ui/login``) or the basic-auth pair from the settings. No credentials configured there: 401 saying
which settings to set. Credentials are compared in constant time and never logged; the cookie holds
a keyed digest of the token, not the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

COOKIE: Final = "audioguard_ui"
REALM: Final = 'realm="audioguard"'
#: The form a browser gets instead of the page without the token (nothing in it comes from a request).
LOGIN_PAGE: Final = (Path(__file__).parent / "static" / "login.html").read_text()


@dataclass(frozen=True)
class UiAccess:
    """The page's access rule (from ``TransformerSettings``: ``ui_open``, ``ui_token``, ``ui_username``,
    ``ui_password``)."""

    open: bool
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def configured(self) -> bool:
        return self.token is not None or self.password is not None

    def cookie_value(self) -> str:
        """What the page's cookie holds once the token was given (a digest, not the token)."""
        assert self.token is not None
        return hmac.new(self.token.encode(), b"audioguard-ui-session", hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allows(self, request: Request) -> bool:
        if self.open:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(value.strip()):
            return True
        if scheme.lower() == "basic" and self._basic_matches(value.strip()):
            return True
        cookie = request.cookies.get(COOKIE)
        return (
            self.token is not None and cookie is not None and hmac.compare_digest(cookie, self.cookie_value())
        )

    def _basic_matches(self, value: str) -> bool:
        if self.username is None or self.password is None:
            return False
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        same_user = hmac.compare_digest(user.encode(), self.username.encode())
        return hmac.compare_digest(password.encode(), self.password.encode()) and same_user

    def refusal(self, request: Request | None = None) -> Response:
        """The 401: what to send, or (nothing configured) which settings to set; a browser asking
        for the page with only a token configured gets a form to type it into."""
        if not self.configured:
            message = (
                "the page is served on a non-loopback interface and needs credentials: set "
                "AUDIOGUARD_UI_TOKEN (or AUDIOGUARD_UI_USERNAME and AUDIOGUARD_UI_PASSWORD)"
            )
        elif self.password is not None:
            message = "the page needs the basic-auth credentials (ui_username, ui_password)"
        else:
            message = "the page needs the token (Authorization: Bearer TOKEN, or POST /ui/login)"
        challenge = f"Basic {REALM}" if self.password is not None else f"Bearer {REALM}"
        wants_page = request is not None and "text/html" in request.headers.get("accept", "")
        if wants_page and self.token is not None and self.password is None:
            headers = {"WWW-Authenticate": challenge, "Cache-Control": "no-store"}
            return HTMLResponse(LOGIN_PAGE, status_code=401, headers=headers)
        return JSONResponse({"error": message}, status_code=401, headers={"WWW-Authenticate": challenge})
