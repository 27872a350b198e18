"""The web UI served by ``panopticon serve`` at ``/ui``: server-rendered pages (Jinja2),
htmx for interaction, Chart.js vendored (no CDN). Pages call the same services as the
JSON API; sign-in is with an API key, then a signed session cookie."""

from panopticon.web.routes import install

__all__ = ["install"]
