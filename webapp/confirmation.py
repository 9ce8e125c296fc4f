"""Asking before a destructive form acts, with or without JavaScript.

With JavaScript the browser asks: a plain form's `data-confirm` question is a dialog, and
app.js adds `confirmed=yes` to the form once it is accepted; an htmx form asks with
`hx-confirm` and its request says so (`HX-Request`). Without JavaScript nothing asked, so
the server does: it answers with a confirmation page whose button posts the same form
again with `confirmed=yes`. Every destructive page route calls `ask_first` first.
"""
from __future__ import annotations

from collections.abc import Iterable

from quart import render_template, request


def confirmed(form) -> bool:
    return form.get("confirmed") == "yes" or request.headers.get("HX-Request") == "true"


async def ask_first(form, *, action: str, question: str, detail: str, button: str,
                    cancel: str, keep: Iterable[str] = ()):
    """None when the person already said yes; otherwise the confirmation page, which
    carries the form's `keep` fields along."""
    if confirmed(form):
        return None
    fields = {name: form[name] for name in keep if form.get(name)}
    return await render_template("confirm.html", action=action, question=question,
                                 detail=detail, button=button, fields=fields, cancel=cancel)
