"""The interactive API docs at ``/api/docs``, served from Swagger UI files shipped in the
package (``api/static/swagger-ui``, from the npm package swagger-ui-dist 5.32.1): the page
makes no request outside this server, so it works offline and leaks nothing."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "install_docs"]

STATIC = Path(__file__).with_name("static")
SWAGGER_UI_VERSION = "5.32.1"


def install_docs(app: FastAPI, path: str = "/api/docs") -> None:
    """Mount the files and the page (``FastAPI(docs_url=None)``: not FastAPI's CDN page)."""
    assets = "/api/static/swagger-ui"
    app.mount("/api/static", StaticFiles(directory=str(STATIC)), name="api-static")
    openapi_url = app.openapi_url or "/api/openapi.json"

    @app.get(path, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
            swagger_css_url=f"{assets}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # no badge from the public validator service: it would send it our schema
            swagger_ui_parameters={"validatorUrl": None},
        )
