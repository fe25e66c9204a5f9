"""The API's bodies are marshmallow schemas declared once: they validate and /openapi.json shows them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest
from apispec.ext.marshmallow.common import make_schema_key
from fixtures.app import close_log_files, initialised_app
from fixtures.convenants import SECOND_CONVENANT, SECOND_CONVENANT_TOML
from fixtures.parties import Party, register_client
from fixtures.records import CONVENANT, make_bsn
from joserfc.jwk import ECKey

from broker.app.answers import Answer
from broker.app.extensions import api
from schemas.convenant_file import DEFAULT_DIR, load_convenants

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


# -- answers -------------------------------------------------------------------------------------

# The component schemas /openapi.json had before the answers were marshmallow schemas (869f7b7,
# besides the convenant's Record_* components): their names are what clients' generated code
# refers to, so none may go or be renamed.
COMPONENTS_BEFORE = {
    "Acknowledgement", "ApDecision", "AuditEntryPage", "Breach", "BreachAcknowledgement", "BreachApDecision",
    "BreachContainment", "BreachEvent", "BreachList", "BreachParty", "BreachPartyApDecision", "CaseEnded",
    "CategoryCount", "Checkpoint", "Close", "ConsistencyProof", "Convenant", "ConvenantList", "ConvenantSummary",
    "Correction", "CorrectionAccepted", "Delivered", "Delivery", "DeliveryList", "DeliverySummary", "Duplicate",
    "Ending", "Erasure", "InclusionProof", "MatchView", "OAuthProblem", "PaginationMetadata", "Problem",
    "ProblemError", "QuarterCounts", "QuarterStatus", "Receipt", "RecordCorrection", "Register", "Report",
    "Restriction", "Scope", "Subject", "SubjectRequest", "SubjectRequestRegistered", "Submission",
    "SubmissionAccepted", "VerifierKey", "Window",
}
RESPONSES_BEFORE = {
    "OAuthProblem400", "OAuthProblem401", "OAuthProblem429", "Problem400", "Problem401", "Problem403",
    "Problem404", "Problem409", "Problem413", "Problem415", "Problem422", "Problem503",
}
# No answer is described by hand (the token endpoint's too is a schema: broker/parties/oauth.py).
BY_HAND: set[tuple[str, str, str]] = set()
JSON_TYPES = ("application/json", "application/problem+json")
# A CSV or a C2SP note is no JSON: it is documented as text beside the JSON schema.
TEXT_TYPES = ("text/csv", "text/plain")


def _answers(spec: dict[str, Any]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(method, path, status, media type, schema) of every answer of every operation, shared
    response components resolved."""
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if set(response) == {"$ref"}:
                    response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                for media_type, content in response.get("content", {}).items():
                    found.append((method, path, status, media_type, content["schema"]))
    return found


def test_every_json_answer_is_a_component_made_from_a_marshmallow_schema(client: Any) -> None:
    """No operation describes a JSON answer (success or problem) by hand: each is a $ref to a
    component apispec made from a marshmallow schema; CSV and text answers are strings."""
    spec = _spec(client)
    from_marshmallow = set(api.ma_plugin.converter.refs.values())
    answers = _answers(spec)
    json_answers = [a for a in answers if a[3] in JSON_TYPES and a[:3] not in BY_HAND]
    assert len(json_answers) > 100, len(json_answers)
    for method, path, status, media_type, schema in answers:
        where = (method, path, status, media_type)
        if (method, path, status) in BY_HAND:
            continue
        if media_type in TEXT_TYPES:
            assert schema == {"type": "string"}, where
            continue
        assert media_type in JSON_TYPES, where
        assert set(schema) == {"$ref"}, (where, schema)
        assert schema["$ref"].rsplit("/", 1)[1] in from_marshmallow, where


def test_the_components_keep_their_names_and_are_made_from_marshmallow_schemas(client: Any) -> None:
    """Every schema and response component of before is still there by name, and every schema among
    them is made from a marshmallow schema now (the answers and the problems too)."""
    components = _spec(client)["components"]
    assert COMPONENTS_BEFORE <= set(components["schemas"])
    assert RESPONSES_BEFORE <= set(components["responses"])
    from_marshmallow = set(api.ma_plugin.converter.refs.values())
    assert COMPONENTS_BEFORE - from_marshmallow == set()


def test_problem_responses_are_documented_as_before(client: Any) -> None:
    """Each problem response is problem+json of the `Problem` (or, at the token endpoint, the
    `OAuthProblem`) schema, with the API-Version header; a problem may carry other members."""
    components = _spec(client)["components"]
    for name in RESPONSES_BEFORE:
        response = components["responses"][name]
        schema = "OAuthProblem" if name.startswith("OAuth") else "Problem"
        reference = {"$ref": f"#/components/schemas/{schema}"}
        assert response["content"] == {"application/problem+json": {"schema": reference}}
        assert response["headers"] == {"API-Version": {"$ref": "#/components/headers/ApiVersion"}}
    problem = components["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["additionalProperties"] is True
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ProblemError"}
    assert set(components["schemas"]["ProblemError"]["required"]) == {"record", "field", "code", "message"}
    oauth = components["schemas"]["OAuthProblem"]
    parts = [components["schemas"]["Problem"] if "$ref" in part else part for part in oauth.get("allOf", [oauth])]
    oauth_properties = {name for part in parts for name in part["properties"]}
    assert {"type", "title", "status", "detail", "errors", "error", "error_description"} <= oauth_properties


def _operation_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_each_answer_is_dumped_by_the_schema_it_documents(app: Any, client: Any) -> None:
    """A view's JSON success answer goes through the very schema /openapi.json shows for it (one
    object for both), and that schema keeps any key the view builds (`Answer`)."""
    spec = _spec(client)
    refs = api.ma_plugin.converter.refs
    checked = 0
    for rule in app.url_map.iter_rules():
        path = _operation_path(rule.rule)
        if path not in spec["paths"]:
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = spec["paths"][path][method.lower()]
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if content is None or (method.lower(), path, status) in BY_HAND:
                    continue
                dumped = view._apidoc["response"]["responses"][int(status)]
                schemas = [d["schema"] for d in dumped if isinstance(d.get("schema"), ma.Schema)]
                assert len(schemas) == 1, (method, path, status)
                assert isinstance(schemas[0], Answer), (method, path, status)
                assert refs[make_schema_key(schemas[0])] == content["schema"]["$ref"].rsplit("/", 1)[1]
                checked += 1
    assert checked >= 25, checked


def _answer_schemas() -> list[type[Answer]]:
    found, stack = [], [Answer]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


def _sample(field: ma.fields.Field) -> Any:
    """A value of the kind a view puts under `field` (JSON-ready), nested answers with a key of their own."""
    if isinstance(field, ma.fields.List):
        return [_sample(field.inner)]
    if isinstance(field, ma.fields.Nested):
        nested: dict[str, Any] = {"not_declared": 7}
        nested.update({f.data_key or n: _sample(f) for n, f in field.schema.fields.items()})
        return nested
    if isinstance(field, ma.fields.Dict):
        return {"a": {"b": [1, None]}}
    if isinstance(field, ma.fields.Boolean):
        return True
    if isinstance(field, ma.fields.Integer):
        return 3
    if isinstance(field, ma.fields.String):
        return "tekst"
    return 2026  # a Raw field: a TOML version may be a number


def test_an_answer_schema_keeps_keys_it_does_not_declare_and_changes_none_it_does() -> None:
    """Dumping through an answer schema never drops, renames or converts a key of the view's answer,
    nested answers included."""
    schemas = _answer_schemas()
    assert len(schemas) >= 30
    for cls in schemas:
        schema = cls()
        original = {"not_declared": {"kept": [1, "a"]}}
        original.update({f.data_key or n: _sample(f) for n, f in schema.fields.items()})
        assert schema.dump(original) == original, cls.__name__
        assert schema.dump({"not_declared": None}) == {"not_declared": None}, cls.__name__


def test_a_convenant_is_answered_exactly_as_its_file_has_it(
    app_config: dict[str, Any], multi_convenant_dir: Path, tmp_path: Path
) -> None:
    """GET /convenants/{id} answers `Convenant.to_dict()` key for key and value for value, through its
    schema: a version the file writes as a number stays a number (the list names it as text)."""
    second = multi_convenant_dir / f"{SECOND_CONVENANT}.toml"
    second.write_text(SECOND_CONVENANT_TOML.replace('version = "7"', "version = 7", 1), encoding="utf-8")
    convenant = load_convenants(multi_convenant_dir)[SECOND_CONVENANT]
    close_log_files()
    with initialised_app(app_config | {"CONVENANT_DIR": str(multi_convenant_dir)}) as app:
        key = ECKey.generate_key("P-256")
        client_id = register_client(app.test_cli_runner(), "rbl-midden-gelre", key.as_dict(private=False), tmp_path)
        party = Party("rbl-midden-gelre", client_id, key, "ES256", app.test_client())
        response = party.get(f"/api/v1/convenants/{SECOND_CONVENANT}")
        assert response.status_code == 200
        assert response.json == json.loads(json.dumps(convenant.to_dict()))
        assert response.json["version"] == 7
        listed = party.get("/api/v1/convenants").json["convenants"]
        assert {"id": SECOND_CONVENANT, "version": "7", "title": convenant.title, "digest": convenant.digest} in listed


def test_the_token_request_is_a_marshmallow_schema_and_its_refusals_stay_oauth_errors(client: Any) -> None:
    """The form-encoded token request is documented by the schema that checks it; a wrong grant type
    is still RFC 6749's 400 unsupported_grant_type, a missing assertion 401 invalid_client."""
    spec = _spec(client)
    body = spec["paths"]["/oauth/token"]["post"]["requestBody"]
    form = body["content"]["application/x-www-form-urlencoded"]
    assert form["schema"] == {"$ref": "#/components/schemas/TokenRequest"}
    assert "TokenRequest" in set(api.ma_plugin.converter.refs.values())
    wrong_grant = client.post("/oauth/token", data={"grant_type": "password"})
    assert (wrong_grant.status_code, wrong_grant.json["error"]) == (400, "unsupported_grant_type")
    no_assertion = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert (no_assertion.status_code, no_assertion.json["error"]) == (401, "invalid_client")
