"""The OpenAPI document tells clients that a body which is not strict JSON is a 400.

Schema-driven clients (schemathesis among them) send invalid UTF-8 and other broken bodies;
the node answers 400 `bad_json` (junto.web.security), so every operation with a body must
document that answer and its shape.
"""

from __future__ import annotations

from typing import Any

import httpx

from helpers import csrf_headers

METHODS = ("post", "put", "patch", "delete")


def _operations_with_a_body(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS and "requestBody" in operation
    ]


async def test_every_operation_with_a_body_documents_the_400(
    app_client: httpx.AsyncClient,
) -> None:
    document = (await app_client.get("/openapi.json")).json()
    operations = _operations_with_a_body(document)
    assert len(operations) >= 10, "expected the JSON API's bodies to be documented"
    missing = [f"{m} {p}" for m, p, op in operations if "400" not in op["responses"]]
    assert missing == [], f"no 400 documented for: {missing}"
    for method, path, operation in operations:
        answer = operation["responses"]["400"]
        assert "UTF-8" in answer["description"], (method, path, answer)
        schema = answer["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        assert "error" in schema["required"], (method, path, schema)


async def test_an_invalid_utf8_body_gets_the_documented_400(
    app_client: httpx.AsyncClient,
) -> None:
    headers = {**(await csrf_headers(app_client)), "content-type": "application/json"}
    answer = await app_client.post(
        "/api/guest", content=b'{"display_name": "\xc3\x28"}', headers=headers
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_json" and "UTF-8" in answer.json()["message"]
