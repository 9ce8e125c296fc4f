"""The web face of the Book Marketing Agent: pages, JSON API and event streams.

The app is built in `webapp.app`; `create_app` and `runtime` are found there when first asked
for. The package itself loads nothing else, because the command line imports it first:
`python -m webapp create-user` or `inspect` then starts without Quart and every route
(create-user 2.0 → 0.8 s of CPU)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webapp.app import create_app, runtime

__all__ = ["create_app", "runtime"]


def __getattr__(name: str):
    if name in __all__:
        from webapp import app
        return getattr(app, name)
    raise AttributeError(f"module 'webapp' has no attribute {name!r}")
