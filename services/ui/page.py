"""The HTML page Gradio serves, completed where Gradio leaves it short for WCAG: the page's
language (``<html lang>``) and ``<title>``, and on the sign-in page (which Gradio renders
without the app's title, head or landmarks) a main landmark around the form.

A plain ASGI middleware: it rewrites only the HTML answer of ``GET /`` and passes
everything else through untouched."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.ui.texts import t

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The sign-in form's container becomes the page's main landmark once Gradio has drawn it.
SIGN_IN_SCRIPT = """<script>
(() => {
  const mark = () => {
    const form = document.querySelector("input[type=password]");
    const heading = document.querySelector("h1");
    if (!form || !heading) return false;
    let box = form;
    while (box && !box.contains(heading)) box = box.parentElement;
    if (box) box.setAttribute("role", "main");
    return Boolean(box);
  };
  const watch = () => {
    if (mark()) return;
    const seen = new MutationObserver(() => { if (mark()) seen.disconnect(); });
    seen.observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) watch(); else document.addEventListener("DOMContentLoaded", watch);
})();
</script>"""


def sign_in_message() -> str:
    """The sign-in page's heading and line, in both languages (each marked with its own
    language): nobody has chosen one yet."""
    return (
        f'<h1 style="font-size:1.5rem;margin:0 0 .5rem"><span lang="en">'
        f'{html.escape(t("en", "page_title"))}</span> · <span lang="fr">'
        f"{html.escape(t('fr', 'page_title'))}</span></h1>"
        f'<p><span lang="en">{html.escape(t("en", "sign_in"))}</span> · '
        f'<span lang="fr">{html.escape(t("fr", "sign_in"))}</span></p>'
    )


def preferred(accept_language: str, default: str) -> str:
    """The first of en/fr the browser asks for (``Accept-Language``), else ``default``."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in ("en", "fr"):
            return code
    return default


def complete(page: str, lang: str, default_lang: str) -> str:
    sign_in = '"auth_required": true' in page or '"auth_required":true' in page
    page_lang = lang if sign_in else default_lang
    page = re.sub(r'<html(\s+)lang="[^"]*"', rf'<html\1lang="{page_lang}"', page, count=1)
    title = (
        f"{t('en', 'sign_in')} · {t('fr', 'sign_in')}" if sign_in else t(page_lang, "page_title")
    )
    extra = f"<title>{html.escape(title)}</title>"
    if sign_in:
        extra += SIGN_IN_SCRIPT
    return page.replace("</head>", extra + "</head>", 1)


class PageLanguage:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app: ASGIApp, default_lang: str = "en") -> None:
        self.app, self.default_lang = app, default_lang

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        lang = preferred(headers.get("accept-language", ""), self.default_lang)
        start: Message = {}
        body: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            raw = b"".join(body)
            kept = [(k, v) for k, v in start.get("headers", [])]
            kinds = [v for k, v in kept if k.lower() == b"content-type"]
            encoded = [v for k, v in kept if k.lower() == b"content-encoding"]
            if kinds and kinds[0].startswith(b"text/html") and not encoded:
                text = complete(raw.decode("utf-8"), lang, self.default_lang)
                raw = text.encode("utf-8")
                kept = [(k, v) for k, v in kept if k.lower() != b"content-length"]
                kept.append((b"content-length", str(len(raw)).encode()))
            await send({**start, "headers": kept})
            await send({"type": "http.response.body", "body": raw, "more_body": False})

        await self.app(scope, receive, capture)
