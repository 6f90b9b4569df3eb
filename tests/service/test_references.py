"""GET /v1/references."""


def test_list_references(client):
    names = [r["name"] for r in client.get("/v1/references").get_json()["references"]]
    assert names == ["grid25", "ring8"]


def test_reference_card_has_centres(client):
    card = client.get("/v1/references/grid25").get_json()
    assert card["kind"] == "reference" and len(card["reference"]["centres"]) == 25


def test_unknown_reference_is_404(client):
    response = client.get("/v1/references/ring8-gan")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
