"""Schemathesis over the API's own OpenAPI schema: every route, valid and invalid input,
with and without an API key. Not one answer may be a server error (5xx other than a 503,
which says "busy, retry" and is not a fault)."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from core.app import create_key
from core.config import load_config
from core.serving.api import create_app
from tests.conftest import FIXED_NOW, backends_of, copy_registry

pytestmark = pytest.mark.slow
EXAMPLES = 8  # per route, generation mode and key state (20 took 83 s of the suite)


@pytest.fixture(scope="module")
def fuzzed(trained_registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzed") / "registry"
    copy_registry(trained_registry, root)
    config = load_config({}).with_overrides(registry_dir=root)
    secrets = {role: create_key(backends_of(config), actor="ada", name=f"fuzzer-{role}",
                                role=role, rate_limit=None, now=FIXED_NOW)[1]
               for role in ("viewer", "device")}
    app = create_app(config)
    with TestClient(app):  # its lifespan: the serving session is started
        yield app, secrets


def test_no_route_answers_a_server_error_to_any_input(fuzzed):
    app, secrets = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14  # every route of the API is in its schema
    statuses: Counter = Counter()
    failures: list[str] = []
    def run(operation, mode, headers, path_parameters):
        @given(case=operation.as_strategy(generation_mode=mode,
                                          path_parameters=path_parameters))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{case.method} {case.formatted_path}: "
                                f"{response.status_code} {response.text[:200]}")

        try:
            call()
        except Unsatisfiable:
            # A route with nothing to get wrong (no parameters, no body) has no invalid
            # input to generate.
            assert mode == GenerationMode.NEGATIVE, operation.label

    served = {"name": "classifier", "version": "1", "label": "champion"}
    for operation in operations:
        # Random names, versions and labels mostly meet a 404: the served ones reach the
        # rest (body parsing, decoding, predicting).
        fixed = {k: v for k, v in served.items() if f"{{{k}}}" in operation.path}
        named = [None, fixed] if fixed else [None]
        # The phones' sync takes a device key only: with it the body is read.
        secret = secrets["device" if operation.path.endswith(":sync") else "viewer"]
        keyed = {"Authorization": f"Bearer {secret}"}
        # Valid input with and without a key; invalid input with one (without, anonymous
        # viewers meet the same parsing, and a device route only its 401).
        for mode, headers in ((GenerationMode.POSITIVE, {}), (GenerationMode.POSITIVE, keyed),
                              (GenerationMode.NEGATIVE, keyed)):
            for path_parameters in named:
                run(operation, mode, headers, path_parameters)
    print(f"schemathesis: {sum(statuses.values())} cases over {len(operations)} routes; "
          f"statuses {dict(sorted(statuses.items()))}")
    assert failures == []
    assert sum(statuses.values()) >= len(operations) * 3
