"""Every error is JSON in one shape, with the right status, and a 500 gives nothing away."""
from __future__ import annotations

import logging

import pytest
from flask import Blueprint, request
from marshmallow import Schema, fields, validate

from tests.conftest import running_app


class _EchoSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    count = fields.Integer(load_default=1)


@pytest.fixture
def app(database_url):
    """The real app plus two routes that exist only to drive the error paths."""
    with running_app(database_url) as app:
        yield _with_probe_routes(app)


def _with_probe_routes(app):
    probe = Blueprint("probe", __name__)

    @probe.post("/probe/echo")
    def echo():
        return _EchoSchema().load(request.get_json())

    @probe.get("/probe/boom")
    def boom():
        raise RuntimeError("SELECT secret FROM vault WHERE password = 'hunter2'")

    app.register_blueprint(probe)
    return app


def _assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


def test_unknown_route_is_a_json_404(client):
    _assert_error_shape(client.get("/no/such/thing"), 404, "not_found")


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.delete("/healthz")
    _assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize("body", ['{"name": ', "not json", '{"name": "a",}'])
def test_malformed_json_is_a_400(client, body):
    response = client.post("/probe/echo", data=body, content_type="application/json")
    _assert_error_shape(response, 400, "malformed_json")


def test_failed_validation_is_a_422_with_field_messages(client):
    response = client.post("/probe/echo", json={"name": "", "count": "many", "extra": 1})
    error = _assert_error_shape(response, 422, "validation_failed")
    assert set(error["details"]) == {"name", "count", "extra"}


def test_valid_input_passes(client):
    response = client.post("/probe/echo", json={"name": "x"})
    assert response.status_code == 200
    assert response.json == {"name": "x", "count": 1}


def test_a_500_shows_no_traceback_or_sql_and_logs_the_cause_with_the_request_id(client, caplog):
    with caplog.at_level(logging.ERROR):
        response = client.get("/probe/boom", headers={"X-Request-ID": "req-abc-123"})
    error = _assert_error_shape(response, 500, "internal_error")
    body = response.get_data(as_text=True)
    assert "hunter2" not in body and "Traceback" not in body and "SELECT" not in body
    assert error["request_id"] == "req-abc-123"
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged and logged[0].request_id == "req-abc-123"
    assert "hunter2" in logged[0].exc_text or "hunter2" in str(logged[0].exc_info[1])


def test_an_unusable_request_id_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"})
    assert response.headers["X-Request-ID"] != "bad id; with spaces"
    assert len(response.headers["X-Request-ID"]) == 32
