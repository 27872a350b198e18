"""The dashboard's cache page: the same stats as `panopticon cache stats`, and clearing or
expiring through the same service, for admins, behind the CSRF check."""

from __future__ import annotations

from html import unescape
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.cli import app as cli_app
from panopticon.mockllm.server import MockServer
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings
from panopticon.store.tables import Result
from tests.conftest import suite_yaml, write
from tests.test_security import app_for, csrf_of, sign_in

cli = CliRunner()


def test_an_admin_sees_the_cache_and_clears_it_and_a_member_only_sees_it(
    tmp_path: Path, env: dict[str, str], mock: MockServer, settings: Settings
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=3))
    assert cli.invoke(cli_app, ["run", str(path), "--no-progress"]).exit_code == 0
    with store(settings) as engine:
        admin = create_key(engine, settings.workspace, "admin", "admin")[1]
        member = create_key(engine, settings.workspace, "member", "member")[1]
    app = app_for(settings)
    with TestClient(app) as member_browser:
        assert sign_in(member_browser, member).status_code == 200
        page = member_browser.get("/ui/cache")
        assert page.status_code == 200
        assert "<strong>6</strong> reusable answers" in page.text and "<td>good</td>" in page.text
        assert 'data-testid="cache-form"' not in page.text  # admins only
        refused = member_browser.post(
            "/ui/cache", data={"csrf": csrf_of(page.text), "action": "clear"}
        )
        assert refused.status_code == 403 and "admin" in refused.text
    with TestClient(app) as browser:
        assert sign_in(browser, admin).status_code == 200
        page = browser.get("/ui/cache")
        assert 'data-testid="cache-form"' in page.text
        csrf = csrf_of(page.text)
        # no CSRF token: refused, nothing retired
        assert browser.post("/ui/cache", data={"action": "clear"}).status_code == 403
        bad = browser.post(
            "/ui/cache", data={"csrf": csrf, "action": "expire", "older_than": "soon"}
        )
        assert bad.status_code == 422 and "cannot read the age 'soon'" in unescape(bad.text)
        assert "<strong>6</strong> reusable answers" in bad.text
        none_older = browser.post(
            "/ui/cache", data={"csrf": csrf, "action": "expire", "older_than": "7d"}
        )
        assert "Retired 0 stored answers older than 7d" in none_older.text
        cleared = browser.post("/ui/cache", data={"csrf": csrf, "action": "clear"})
        assert cleared.status_code == 200 and cleared.url.path == "/ui/cache"
        assert "Retired 6 stored answers" in cleared.text
        assert "<strong>0</strong> reusable answers" in cleared.text
        assert "6 answers retired" in cleared.text
    with store(settings) as engine, engine.connect() as conn:  # the run's record is whole
        assert conn.scalar(sa.select(sa.func.count()).select_from(Result)) == 6
