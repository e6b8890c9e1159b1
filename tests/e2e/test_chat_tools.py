"""Tool calling and structured output: no moat backend offers them yet, so a request that relies
on them is refused with a 400 naming the field (as vLLM refuses what it was not started for),
never answered as if the field were absent. tool_choice "none" and response_format "text" ask for
nothing special and are served."""

from __future__ import annotations

import openai
import pytest

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
MESSAGES = [{"role": "user", "content": "weather please"}]


@pytest.mark.parametrize("choice", [None, "auto", "required", {"type": "function", "function": {"name": "get_weather"}}])
def test_tool_calls_wanted_are_refused(client, choice):
    extra = {} if choice is None else {"tool_choice": choice}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="echo", messages=MESSAGES, tools=TOOLS, **extra)
    err = info.value.body
    assert err["param"] == "tool_choice"
    assert err["code"] == "unsupported"
    assert "tool" in err["message"]


def test_tools_with_tool_choice_none_are_served(client):
    out = client.chat.completions.create(model="echo", messages=MESSAGES, tools=TOOLS, tool_choice="none")
    assert out.choices[0].message.content == "weather please"
    assert not out.choices[0].message.tool_calls


@pytest.mark.parametrize("fmt", [{"type": "json_object"},
                                 {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}])
def test_structured_output_is_refused(client, fmt):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="echo", messages=MESSAGES, response_format=fmt)
    assert info.value.body["param"] == "response_format"
    assert fmt["type"] in info.value.body["message"]


def test_response_format_text_is_served(client):
    out = client.chat.completions.create(model="echo", messages=MESSAGES, response_format={"type": "text"})
    assert out.choices[0].message.content == "weather please"
