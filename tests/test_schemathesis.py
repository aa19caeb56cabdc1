"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis).

A real `junto serve` process is fuzzed over HTTP, once as an anonymous visitor and once as a
signed-in member. Both send a valid CSRF token, so that requests get past the CSRF check and
reach the handlers. The checks: no server error (5xx) ever, and every documented response's body
conforms to its schema. Examples per operation are bounded so the module stays well under two
minutes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from conftest import LiveNode, make_live_node
from helpers import CSRF_COOKIE, CSRF_HEADER
from junto.app import build_app
from junto.config import Settings

if TYPE_CHECKING:  # schemathesis names its OpenAPI case type only for type checkers
    from schemathesis.specs.openapi.schemas import OpenApiCase

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, response_schema_conformance]
FUZZ = settings(
    max_examples=20,
    deadline=None,  # a loaded CI machine is slow; a hang still fails through the timeout
    suppress_health_check=list(HealthCheck),
    database=None,  # write nothing into the source tree
)


@dataclass
class FuzzTarget:
    node: LiveNode
    anonymous_cookies: dict[str, str]  # just a CSRF cookie
    member_cookies: dict[str, str]  # a signed-in member's session and CSRF cookies


def cookie_values(http: requests.Session) -> dict[str, str]:
    """The session's cookies by name (requests types a value as possibly None; ours have one)."""
    return {name: value for name, value in http.cookies.get_dict().items() if value is not None}


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    node = make_live_node(Path(tmp_path_factory.mktemp("fuzzed")))
    node.start()
    try:
        # Sign the member up before fuzzing can spend the sign-up rate limit.
        with requests.Session() as http:
            http.get(node.url + "/healthz", timeout=10)
            response = http.post(
                node.url + "/api/signup",
                json={"username": "fuzz_" + secrets.token_hex(4), "password": "fuzzing is fun"},
                headers={CSRF_HEADER: cookie_values(http)[CSRF_COOKIE]},
                timeout=10,
            )
            assert response.status_code == 201, response.text
            cookies = cookie_values(http)
        with requests.Session() as http:
            http.get(node.url + "/healthz", timeout=10)
            anonymous = cookie_values(http)
        yield FuzzTarget(node, anonymous, cookies)
    finally:
        node.stop()


def openapi_document() -> dict[str, Any]:
    """The node's OpenAPI document, built in-process without starting anything.

    Operations must be known when pytest collects (one test per operation), before any node
    runs; `test_the_served_document_is_the_one_fuzzed` checks it equals the served /openapi.json.
    (schemathesis' lazy `from_fixture` loader would avoid this but fails on pytest 9.)
    """
    settings = Settings(data_dir=Path("/nonexistent"), secret_key="only-for-the-schema")
    document: dict[str, Any] = build_app(settings).openapi()
    return document


def session_with(cookies: dict[str, str]) -> requests.Session:
    http = requests.Session()
    http.cookies.update(cookies)
    http.headers[CSRF_HEADER] = cookies[CSRF_COOKIE]
    return http


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(fuzz_target: FuzzTarget) -> None:
    served = requests.get(fuzz_target.node.url + "/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert len(DOCUMENT["paths"]) >= 10, "expected the whole JSON API to be documented"


@schema.parametrize()
@FUZZ
def test_api_as_an_anonymous_visitor(case: OpenApiCase, fuzz_target: FuzzTarget) -> None:
    with session_with(fuzz_target.anonymous_cookies) as http:
        case.call_and_validate(base_url=fuzz_target.node.url, session=http, checks=CHECKS)


# Signing out would end the member's session for every later example; it is fuzzed anonymously.
@schema.exclude(method="POST", path="/api/signout").parametrize()
@FUZZ
def test_api_as_a_signed_in_member(case: OpenApiCase, fuzz_target: FuzzTarget) -> None:
    with session_with(fuzz_target.member_cookies) as http:
        case.call_and_validate(base_url=fuzz_target.node.url, session=http, checks=CHECKS)
