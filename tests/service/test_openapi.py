"""/openapi.json validates, covers exactly the app's routes, and /docs is served locally."""

import ast
import io
import re
import time
from pathlib import Path

import numpy as np
from openapi_spec_validator import validate

import service
from service.app import create_app
from tests.helpers import make_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


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


def fetch(client, path: str) -> tuple[int, str, bytes]:
    """(status, media type, body) of a GET, the response closed (a file answer holds its file
    open until then)."""
    with client.get(path) as response:
        return response.status_code, response.mimetype, response.get_data()


def test_docs_page_is_self_contained(client):
    response = client.get("/docs")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert not re.search(r"""(src|href)=["']https?://""", html)
    for asset in re.findall(r'(?:src|href)="(docs/[^"]+)"', html):
        status, _, data = fetch(client, f"/{asset}")
        assert status == 200 and len(data) > 0, asset
    initializer = fetch(client, "/docs/init.js")[2].decode()
    assert "openapi.json" in initializer and "tryItOutEnabled: true" in initializer
    assert "validatorUrl: null" in initializer  # no badge fetched from the internet


def test_docs_page_is_swagger_ui(client):
    html = client.get("/docs").get_data(as_text=True)
    assert 'src="docs/swagger-ui-bundle.js"' in html and 'id="swagger-ui"' in html
    status, mimetype, script = fetch(client, "/docs/swagger-ui-bundle.js")
    assert status == 200 and mimetype in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in script


def test_docs_assets_are_only_the_pages_files(client):
    assert client.get("/docs/index.html").status_code == 404
    assert client.get("/docs/..%2Fapp.py").status_code == 404


def test_docs_and_their_assets_are_open_with_an_api_key(model_repo):
    client = create_app(make_config(model_repo, api_key="k")).test_client()
    for path in ("/docs", "/docs/init.js", "/docs/swagger-ui.css", "/openapi.json"):
        assert fetch(client, path)[0] == 200, path
    assert client.get("/v1/models").status_code == 401
    document = client.get("/openapi.json").get_json()
    assert document["paths"]["/docs/{asset}"]["get"]["security"] == []


def emitted_problem_slugs() -> tuple[set[str], set[str]]:
    """(the literal slugs, the f-string slugs as regexes) of every ApiError(...) in service/."""
    literal, patterns = set(), set()
    for path in Path(service.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "ApiError"):
                continue
            slugs = node.args[2:3] + [k.value for k in node.keywords if k.arg == "slug"]
            for slug in slugs:
                if isinstance(slug, ast.Constant) and isinstance(slug.value, str):
                    literal.add(slug.value)
                elif isinstance(slug, ast.JoinedStr):
                    parts = [
                        re.escape(p.value) if isinstance(p, ast.Constant) else "[a-z-]+"
                        for p in slug.values
                    ]
                    patterns.add("".join(parts))
    return literal, patterns


def test_every_emitted_problem_type_is_documented():
    documented = set(re.findall(r"^\| `/problems/([a-z-]+)` \|", DOCS.read_text(), re.M))
    literal, patterns = emitted_problem_slugs()
    assert len(literal) > 10 and patterns  # the scan found the ApiError calls
    assert literal - documented == set()
    for pattern in patterns:
        assert any(re.fullmatch(pattern, slug) for slug in documented), pattern


def test_seed_maximum_and_the_drawn_range_are_described(client):
    seed = client.get("/openapi.json").get_json()["components"]["schemas"]["SampleRequest"]
    seed = seed["properties"]["seed"]
    assert seed["maximum"] == 2**63 - 1 and "2^53" in seed["description"]


def operations(document: dict):
    """(path, method, operation, its path parameters) of every operation in the document."""
    for path, item in document["paths"].items():
        for method in ("get", "post", "put", "delete"):
            if method in item:
                operation = item[method]
                parameters = item.get("parameters", []) + operation.get("parameters", [])
                yield path, method, operation, [p for p in parameters if p["in"] == "path"]


def test_every_route_has_an_example_to_try(client):
    """Swagger UI's "Try it out" is one click: every path parameter and every request body
    that is not a raw file carries an example."""
    missing = []
    for path, method, operation, parameters in operations(client.get("/openapi.json").get_json()):
        missing += [f"{method} {path}: {p['name']}" for p in parameters if "example" not in p]
        for media, body in operation.get("requestBody", {}).get("content", {}).items():
            if media != "application/octet-stream" and "example" not in body:
                missing.append(f"{method} {path}: {media} body")
    assert not missing, missing


def example_request(path: str, operation: dict, parameters: list[dict]) -> tuple[str, dict]:
    """(url, keyword arguments of the test client's call) from the document's examples; a
    multipart body gets a 2-D .npy batch as its file."""
    for parameter in parameters:
        path = path.replace(f"{{{parameter['name']}}}", str(parameter["example"]))
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return path, {"json": content["application/json"]["example"]}
    if "multipart/form-data" in content:
        batch = io.BytesIO()
        np.save(batch, np.random.default_rng(0).normal(size=(200, 2)))
        batch.seek(0)
        form = {**content["multipart/form-data"]["example"], "file": (batch, "samples.npy")}
        return path, {"data": form, "content_type": "multipart/form-data"}
    return path, {}


def finished_job(client) -> str:
    """The id of a finished job: the samples route's example sent with Prefer: respond-async
    (a job id's example cannot exist in a fresh service)."""
    response = client.post(
        "/v1/models/ring8-gan/samples",
        json={"n": 16, "seed": 1},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 202, response.get_data()
    for _ in range(200):
        job = client.get(response.headers["Location"]).get_json()
        if job["state"] not in ("queued", "running"):
            return job["id"]
        time.sleep(0.05)
    raise TimeoutError(job)


def test_every_example_answers_as_documented(client):
    """Each operation called with its examples (the tiny repository: ring8-gan, ring8) answers
    a status it documents, and a success where the method reads or creates (the examples
    work); DELETE of the example reference (built in) is its documented 409. A job's routes get
    a job just finished, as the id in their example would be."""
    for path, method, operation, parameters in operations(client.get("/openapi.json").get_json()):
        parameters = [
            p | {"example": finished_job(client)} if p["name"] == "job_id" else p
            for p in parameters
        ]
        url, arguments = example_request(path, operation, parameters)
        with client.open(url, method=method.upper(), **arguments) as response:
            status = response.status_code
        documented = set(operation["responses"])
        assert str(status) in documented, (method, url, status, response.get_data()[:200])
        if method in ("get", "post") and documented & {"200", "201", "204"}:
            assert status < 400, (method, url, status)
