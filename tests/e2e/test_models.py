"""GET /v1/models and /v1/models/{id} through the SDK and as raw bodies."""

import openai
import pytest

import http_raw
import openapi_schema
from conftest import default_models

pytestmark = pytest.mark.usefixtures("openapi_file")


def test_models_list(client, server):
    status, _, body = http_raw.request_json(server, "GET", "/v1/models")
    assert status == 200
    openapi_schema.validate("ListModelsResponse", body)
    assert body["object"] == "list"
    names = [m["id"] for m in body["data"]]
    assert sorted(names) == sorted(m["name"] for m in default_models())
    for model in body["data"]:
        openapi_schema.validate("Model", model)
        assert model["object"] == "model"
        assert model["owned_by"]
    listed = client.models.list()
    assert sorted(m.id for m in listed.data) == sorted(names)


def test_models_retrieve(client, server):
    model = client.models.retrieve("echo-chunk1")
    assert model.id == "echo-chunk1"
    assert model.object == "model"
    status, _, body = http_raw.request_json(server, "GET", "/v1/models/echo")
    assert status == 200
    openapi_schema.validate("Model", body)
    assert body["id"] == "echo"


def test_models_retrieve_unknown_is_404(client, server):
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    status, _, body = http_raw.request_json(server, "GET", "/v1/models/no-such-model")
    assert status == 404
    openapi_schema.validate("ErrorResponse", body)
