"""A database that stops answering: 503 `database_unavailable` (never a 500), one log line
when it goes and one when it is back, and service again without a restart of ours."""
from __future__ import annotations

import pytest

from tests.support import PostgresServer, wait_until


@pytest.fixture
def private_postgres():
    """A cluster of this test's own: it is stopped and started again under the server."""
    server = PostgresServer()
    yield server
    server.stop()


def test_the_api_answers_503_while_postgres_is_down_and_recovers(fresh_stack, private_postgres):
    stack = fresh_stack("embedded", DATABASE_URL=private_postgres.database("outage")).start()
    assert stack.client.get("/api/tasks").status_code == 200

    private_postgres.halt()
    for path in ("/api/tasks", "/api/tasks/stats", "/api/books"):
        down = stack.client.get(path)
        assert down.status_code == 503, (path, down.status_code, down.text)
        assert down.json()["error"] == "database_unavailable"
        assert int(down.headers["retry-after"]) > 0
    page = stack.client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 503 and "database is not answering" in page.text

    private_postgres.start()
    wait_until(lambda: stack.client.get("/api/tasks").status_code == 200, 30,
               "the API to answer again once PostgreSQL is back")
    log = stack.web.log()
    assert log.count("database unreachable (") == 1, log[-3000:]
    assert log.count("database reachable again") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
