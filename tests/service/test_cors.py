"""CORS, off unless CORS_ORIGINS is set (service/cors.py)."""

import pytest

from service.app import create_app
from service.config import ServiceConfig
from tests.helpers import make_config

ORIGIN = "https://lab.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def cors_client(model_repo, origins: str, **overrides):
    return create_app(make_config(model_repo, cors_origins=origins, **overrides)).test_client()


def test_off_by_default_no_cors_headers(client):
    response = client.get("/v1/models", headers={"Origin": ORIGIN})
    preflight = client.options("/v1/models/ring8-gan/samples", headers=PREFLIGHT)
    for answer in (response, preflight):
        assert not [h for h in answer.headers.keys() if h.startswith("Access-Control-")]
        assert "Origin" not in answer.headers.get("Vary", "")


@pytest.mark.parametrize("origins", [ORIGIN, f"https://other.example, {ORIGIN}/", "*"])
def test_allowed_origin_gets_the_headers(model_repo, origins):
    response = cors_client(model_repo, origins).post(
        "/v1/models/ring8-gan/samples", json={"n": 2}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ("*" if origins == "*" else ORIGIN)
    assert "X-Seed" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" in response.headers["Vary"]


def test_other_origin_gets_no_allow_origin(model_repo):
    client = cors_client(model_repo, ORIGIN)
    response = client.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers["Vary"]
    preflight = client.options(
        "/v1/models", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Methods" not in preflight.headers


def test_preflight_is_204_without_the_api_key(model_repo):
    client = cors_client(model_repo, ORIGIN, api_key="secret")
    response = client.options("/v1/models/ring8-gan/samples", headers=PREFLIGHT)
    assert response.status_code == 204 and response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"]
    assert "Authorization" in allowed and "Content-Type" in allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    # the real request still needs the key, and its 401 is readable by the page
    refused = client.post("/v1/models/ring8-gan/samples", json={}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("value", ["lab.example", "*,https://a.example", "https://a.example/x"])
def test_bad_cors_origins_are_refused(value):
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        ServiceConfig.from_env({"CORS_ORIGINS": value})
