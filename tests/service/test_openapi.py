"""/openapi.json validates, covers exactly the app's routes, and /docs is served locally."""

import re

from openapi_spec_validator import validate

from service.app import create_app
from tests.helpers import make_config


def flask_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def spec_routes(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in ("get", "post", "put", "delete")
        if method in item
    }


def test_openapi_validates(client):
    document = client.get("/openapi.json").get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_openapi_covers_every_route(app, client):
    assert spec_routes(client.get("/openapi.json").get_json()) == flask_routes(app)


def test_openapi_states_the_limits(client):
    document = client.get("/openapi.json").get_json()
    n = document["components"]["schemas"]["SampleRequest"]["properties"]["n"]
    assert n["maximum"] == client.application.config["SERVICE"].max_samples


def test_api_key_is_declared_when_set(model_repo):
    client = create_app(make_config(model_repo, api_key="k")).test_client()
    document = client.get("/openapi.json").get_json()
    validate(document)
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


def test_docs_page_is_self_contained(client):
    response = client.get("/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "openapi.json" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)


def test_seed_maximum_and_the_drawn_range_are_described(client):
    seed = client.get("/openapi.json").get_json()["components"]["schemas"]["SampleRequest"]
    seed = seed["properties"]["seed"]
    assert seed["maximum"] == 2**63 - 1 and "2^53" in seed["description"]
