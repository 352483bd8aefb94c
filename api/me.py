"""GET /api/v1/me: who the presented token belongs to — {name, admin, webhook_secret} — so a
client (the web page at `/`) can greet its user and show administrators the approval queue
through the same public API as everyone, and a receiver of webhooks can check their signature.
POST /api/v1/me/webhook_secret rotates that secret."""
from __future__ import annotations

from aiohttp import web

from api.auth import current_user
from api.keys import SETTINGS, STATE
from api.users import user_view
from domain.webhooks import WebhookSecrets

PRIVATE = {"Cache-Control": "private, no-store"}


def _secrets(request: web.Request) -> WebhookSecrets:
    return WebhookSecrets(request.app[STATE], request.app[SETTINGS].secret_key)


async def me(request: web.Request) -> web.Response:
    user = await current_user(request)
    secret = await _secrets(request).get(user.name)
    return web.json_response({**user_view(user), "webhook_secret": secret}, headers=PRIVATE)


async def rotate_webhook_secret(request: web.Request) -> web.Response:
    user = await current_user(request)
    secret = await _secrets(request).rotate(user.name)
    return web.json_response({**user_view(user), "webhook_secret": secret}, headers=PRIVATE)
