"""The REST API (FastAPI). Build it with :func:`panopticon.api.app.create_app`."""
