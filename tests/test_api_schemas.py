"""The API's bodies are marshmallow schemas declared once: they validate and /openapi.json shows them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fixtures.convenants import SECOND_CONVENANT
from fixtures.parties import Party
from fixtures.records import CONVENANT, make_bsn

from broker.app.extensions import api
from schemas.convenant import DEFAULT_DIR, load_convenants

SUBMISSIONS = "/api/v1/convenants/{convenant_id}/submissions"
CORRECTIONS = "/api/v1/convenants/{convenant_id}/corrections"
METHODS = ("get", "put", "post", "delete", "patch")


def _spec(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.get_json()
    return spec


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[1]
    resolved: dict[str, Any] = spec["components"]["schemas"][name]
    return resolved


def _json_bodies(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, schema) of every operation that takes a JSON body."""
    return [
        (method, path, operation["requestBody"]["content"]["application/json"]["schema"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS and "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


def test_each_category_of_the_convenant_is_a_component_with_exactly_its_bijlage_1_fields(client: Any) -> None:
    """Per category of the demo convenant a record component lists exactly the fields Bijlage 1 allows
    for it (read from the convenant file), each described with its Bijlage 1 reason."""
    convenant = load_convenants(DEFAULT_DIR)[CONVENANT]
    components = _spec(client)["components"]["schemas"]
    assert len(convenant.categories) >= 2
    for category in convenant.categories.values():
        component = components[f"Record_{CONVENANT}_{category.id}"]
        assert set(component["properties"]) == {"category", *category.field_names}
        assert component["properties"]["category"]["enum"] == [category.id]
        assert set(component["required"]) == {"category", *category.field_names} - category.optional
        assert component["additionalProperties"] is False
        assert category.definition in component["description"]
        for item in category.items:
            for name in item.fields:
                assert item.reason in component["properties"][name]["description"], (category.id, name)


def test_record_fields_are_documented_as_the_validator_checks_them(client: Any) -> None:
    """Lengths, patterns, choices and nested fields come from the convenant's field definitions."""
    convenant = load_convenants(DEFAULT_DIR)[CONVENANT]
    components = _spec(client)["components"]["schemas"]
    for category in convenant.categories.values():
        properties = components[f"Record_{CONVENANT}_{category.id}"]["properties"]
        for name in category.field_names:
            spec, documented = convenant.fields[name], properties[name]
            if spec.max_length is not None:
                assert documented["maxLength"] == spec.max_length, name
            if spec.choices:
                assert documented["enum"] == list(spec.choices), name
            if spec.type == "date":
                assert documented["format"] == "date", name
            if spec.type == "object":
                assert set(documented["properties"]) == {sub.name for sub in spec.fields}, name
                for sub in spec.fields:
                    if sub.pattern:
                        assert documented["properties"][sub.name]["pattern"] == sub.pattern


@pytest.mark.parametrize("path", [SUBMISSIONS, CORRECTIONS])
def test_the_records_of_a_body_are_one_of_the_category_components(client: Any, path: str) -> None:
    """A submission's and a correction's records are `oneOf` the record components, told apart by `category`."""
    convenant = load_convenants(DEFAULT_DIR)[CONVENANT]
    spec = _spec(client)
    body = _resolve(spec, spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])
    items = body["properties"]["records"]["items"]
    expected = {f"#/components/schemas/Record_{CONVENANT}_{c}" for c in convenant.categories}
    assert {one["$ref"] for one in items["oneOf"]} == expected
    assert items["discriminator"]["propertyName"] == "category"
    mapping = {c: f"#/components/schemas/Record_{CONVENANT}_{c}" for c in convenant.categories}
    assert items["discriminator"]["mapping"] == mapping
    assert "records" in body["required"]


def test_every_convenant_served_has_its_record_components(multi_app: Any, multi_convenant_dir: Any) -> None:
    """With two convenants, each category of each is a component of the submission's records."""
    convenants = load_convenants(multi_convenant_dir)
    assert SECOND_CONVENANT in convenants
    spec = _spec(multi_app.test_client())
    body = _resolve(spec, spec["paths"][SUBMISSIONS]["post"]["requestBody"]["content"]["application/json"]["schema"])
    refs = {one["$ref"].rsplit("/", 1)[1] for one in body["properties"]["records"]["items"]["oneOf"]}
    assert refs == {f"Record_{c.id}_{category}" for c in convenants.values() for category in c.categories}
    for name in refs:
        assert name in spec["components"]["schemas"]


def test_every_json_request_body_is_a_component_made_from_a_marshmallow_schema(client: Any) -> None:
    """No operation describes its JSON body by hand: each is a $ref to a component apispec made from a
    marshmallow schema (the very schema `@blp.arguments` validates with)."""
    spec = _spec(client)
    bodies = _json_bodies(spec)
    assert len(bodies) == 11, bodies
    from_marshmallow = set(api.ma_plugin.converter.refs.values())
    for method, path, schema in bodies:
        assert set(schema) == {"$ref"}, (method, path, schema)
        assert schema["$ref"].rsplit("/", 1)[1] in from_marshmallow, (method, path)
    csv = spec["paths"][SUBMISSIONS]["post"]["requestBody"]["content"]["text/csv"]
    assert csv["schema"]["type"] == "string"


# The bodies validated whole by their schema (an envelope's contents are checked by a service).
VALIDATED = {
    "/api/v1/breaches",
    "/api/v1/convenants/{convenant_id}/subject-requests",
    "/api/v1/convenants/{convenant_id}/restrictions",
    "/api/v1/convenants/{convenant_id}/erasures",
}


def test_a_documented_required_field_is_required(client: Any, rbl: Party, problem: Any) -> None:
    """What /openapi.json calls required is what a breach or rights endpoint refuses without (422 naming it)."""
    spec = _spec(client)
    checked = 0
    for method, path, schema in _json_bodies(spec):
        component = _resolve(spec, schema)
        if path not in VALIDATED:
            continue
        url = path.replace("{convenant_id}", CONVENANT)
        assert method == "post"
        found = problem(rbl.post(url, json={}), 422)
        missing = {e["field"] for e in found["errors"] if e["code"] == "required"}
        assert missing == set(component.get("required", ())), (method, path)
        checked += 1
    assert checked == 4


MALFORMED = {
    "not json": (b"{", 400),
    "a list": (b"[1]", None),
    "a BSN as a key": (json.dumps({make_bsn(3) + " Noah": 1}).encode(), None),
}
# (path, status for JSON that is not an object or has an unknown key): breach and rights bodies are
# 422, an envelope of records checked by a service (submission, correction, ending) 400.
ENDPOINTS = [
    ("/api/v1/breaches", 422),
    (f"/api/v1/convenants/{CONVENANT}/subject-requests", 422),
    (f"/api/v1/convenants/{CONVENANT}/restrictions", 422),
    (f"/api/v1/convenants/{CONVENANT}/erasures", 422),
    (f"/api/v1/convenants/{CONVENANT}/submissions", 400),
    (f"/api/v1/convenants/{CONVENANT}/corrections", 400),
    (f"/api/v1/convenants/{CONVENANT}/endings", 400),
]


@pytest.mark.parametrize("case", MALFORMED)
@pytest.mark.parametrize(("path", "status"), ENDPOINTS)
def test_a_malformed_body_is_a_problem_in_the_brokers_shape(
    rbl: Party, problem: Any, path: str, status: int, case: str
) -> None:
    """A body that is no JSON is 400, one that is no object or has a made-up key the endpoint's status,
    as problem+json whose errors are {record, field, code, message} and never echo the key's BSN."""
    data, expected = MALFORMED[case]
    response = rbl.post(path, data=data, headers={"Content-Type": "application/json"})
    body = problem(response, expected or status)
    for error in body.get("errors", []):
        assert set(error) == {"record", "field", "code", "message"}, error
        assert error["record"] is None
    if case == "a BSN as a key":
        unknown = [(e["field"], e["code"]) for e in body["errors"] if e["code"] == "not_allowed"]
        assert unknown == [("veld 1", "not_allowed")]
        assert make_bsn(3) not in response.get_data(as_text=True)


@pytest.mark.parametrize(("path", "status"), ENDPOINTS)
def test_a_body_in_another_media_type_is_415(rbl: Party, problem: Any, path: str, status: int) -> None:
    """A body that is not JSON (nor CSV, for a submission) is refused with 415 problem+json."""
    problem(rbl.post(path, data=b"bsn=1", headers={"Content-Type": "text/plain"}), 415)
