"""Issue 12 item 5 (tools): ``tools`` / ``tool_choice`` rendered into the chat template, calls in the response.

Three levels: the pure translation (which structured output forces which call, what is refused);
the HTTP contract on a fake engine (``tool_calls`` in a completion and in the last streamed chunk,
``finish_reason: "tool_calls"``); the real engine on the tiny Qwen3-VL checkpoint, whose template
renders tools: a random-weight model calls nothing of its own accord, so a forced ``tool_choice``
(vLLM's own path: the function's parameter schema through structured outputs) must yield a call
whose arguments validate against the schema, and vLLM's ``hermes`` parser reads a Qwen-style
``<tool_call>`` text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.harness import TRANSLATION_LIMITS as LIMITS
from tests.harness import FakeEngine, ServerProcess, ThreadedServer, data_url, fake_engine_server
from videomodel_devtools.synthetic_videos import VideoSpec, make_video
from videomodel_server.api.chat.protocol import ChatCompletionRequest
from videomodel_server.api.chat.translation import build
from videomodel_server.budget import Family, VideoBudget
from videomodel_server.engine import EngineConfig, VllmEngine, template_messages
from videomodel_server.errors import InvalidRequest, OverBudget
from videomodel_server.jobs import ToolCall, Turn

EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["goal", "foul", "corner"]},
        "team": {"type": "string", "enum": ["home", "away"]},
    },
    "required": ["event", "team"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "report_event", "description": "Report a match event.", "parameters": EVENT},
    },
    {"type": "function", "function": {"name": "no_event", "description": "Nothing happened."}},
]
NAMED = {"type": "function", "function": {"name": "report_event"}}


def _request(**body: Any) -> ChatCompletionRequest:
    body.setdefault("messages", [{"role": "user", "content": "what happens?"}])
    return ChatCompletionRequest.model_validate(body)


# -- pure: what each tool_choice asks of the engine -----------------------------------------------


def test_tools_default_to_auto_with_no_constraint() -> None:
    job = build(_request(tools=TOOLS), LIMITS)
    assert job.tools is not None and job.tools.choice == "auto" and job.sampling.structured is None
    assert [t["function"]["name"] for t in json.loads(job.tools.definitions)] == ["report_event", "no_event"]


def test_named_tool_choice_forces_the_parameter_schema() -> None:
    job = build(_request(tools=TOOLS, tool_choice=NAMED), LIMITS)
    assert job.tools is not None and job.tools.choice == "function" and job.tools.function == "report_event"
    assert job.sampling.structured is not None and json.loads(job.sampling.structured.schema or "") == EVENT


def test_required_forces_an_array_of_calls() -> None:
    job = build(_request(tools=TOOLS, tool_choice="required", parallel_tool_calls=False), LIMITS)
    assert job.sampling.structured is not None
    schema = json.loads(job.sampling.structured.schema or "")
    assert schema["minItems"] == 1 and schema["maxItems"] == 1
    good = [{"name": "report_event", "parameters": {"event": "goal", "team": "home"}}]
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"name": "report_event", "parameters": {"event": "dance", "team": "home"}}], schema)


def test_none_renders_no_tools() -> None:
    job = build(_request(tools=TOOLS, tool_choice="none"), LIMITS)
    assert job.tools is None and job.sampling.structured is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "fly"}}},
            "tool_choice.function.name",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": NAMED}, "tool_choice"),
        ({"tools": TOOLS + TOOLS[:1]}, "tools"),
        ({"tools": TOOLS, "tool_choice": NAMED, "response_format": {"type": "json_object"}}, "response_format"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build(_request(**body), LIMITS)
    assert caught.value.param == param and caught.value.status == 400


def test_tools_are_bounded() -> None:
    huge = [{"type": "function", "function": {"name": f"f{i}", "description": "x" * 8000}} for i in range(10)]
    with pytest.raises(OverBudget, match="tools is"):
        build(_request(tools=huge), LIMITS)
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(OverBudget, match="nested deeper"):
        build(_request(tools=[{"type": "function", "function": {"name": "f", "parameters": deep}}]), LIMITS)


def test_a_conversation_with_calls_and_results_reaches_the_template() -> None:
    messages = [
        {"role": "user", "content": "what happens?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "report_event", "arguments": '{"event":"goal"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "recorded"},
        {"role": "user", "content": "and then?"},
    ]
    job = build(_request(messages=messages, tools=TOOLS), LIMITS)
    assert job.turns[1] == Turn("assistant", ("",), tool_calls=(ToolCall("c1", "report_event", '{"event":"goal"}'),))
    shaped = template_messages(job.turns)
    assert shaped[1]["tool_calls"][0]["function"] == {"name": "report_event", "arguments": {"event": "goal"}}
    assert shaped[2] == {"role": "tool", "content": "recorded", "tool_call_id": "c1"}
    with pytest.raises(InvalidRequest, match="only assistant messages make tool calls"):
        build(_request(messages=[{**messages[1], "role": "user", "content": "x"}]), LIMITS)


# -- HTTP on a fake engine ------------------------------------------------------------------------


@dataclass
class ToolFakeEngine(FakeEngine):
    """The fake engine with the two tool hooks: it records the tools it renders and reads
    ``<tool_call>`` JSON like the hermes parser."""

    rendered_tools: list[str | None] | None = None

    def render(self, turns: Sequence[Turn], tools: str | None = None) -> str:
        if self.rendered_tools is not None:
            self.rendered_tools.append(tools)
        return super().render(turns)

    def parse_tool_calls(self, text: str) -> tuple[str | None, tuple[ToolCall, ...]]:
        head, _, rest = text.partition("<tool_call>")
        if not rest:
            return text, ()
        call = json.loads(rest.split("</tool_call>")[0])
        return head or None, (ToolCall("id-1", call["name"], json.dumps(call["arguments"])),)


def _chat(server: ThreadedServer, **body: Any) -> httpx.Response:
    body.setdefault("messages", [{"role": "user", "content": "what happens?"}])
    return httpx.post(server.url + "/v1/chat/completions", content=json.dumps(body).encode(), timeout=60)


@pytest.fixture
def forced() -> Iterator[tuple[ThreadedServer, ToolFakeEngine]]:
    engine = ToolFakeEngine(words=('{"event": "goal",', ' "team": "home"}'), rendered_tools=[])
    with fake_engine_server(engine) as server:
        yield server, engine


def test_a_forced_call_comes_back_as_tool_calls(forced: tuple[ThreadedServer, ToolFakeEngine]) -> None:
    server, engine = forced
    calls_before = _tool_calls_counted(server)
    resp = _chat(server, tools=TOOLS, tool_choice=NAMED)
    assert resp.status_code == 200, resp.text
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"].get("content") is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "report_event" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"event": "goal", "team": "home"}
    assert (
        engine.rendered_tools and json.loads(engine.rendered_tools[-1] or "")[0]["function"]["name"] == "report_event"
    )
    assert resp.json()["usage"]["completion_tokens"] == 2
    assert _tool_calls_counted(server) - calls_before == 1


def _tool_calls_counted(server: ThreadedServer) -> float:
    (line,) = [
        ln
        for ln in httpx.get(server.url + "/metrics").text.splitlines()
        if ln.startswith("videomodel_tool_calls_total ")
    ]
    return float(line.split()[-1])


def test_a_streamed_forced_call_arrives_in_the_last_chunk(forced: tuple[ThreadedServer, ToolFakeEngine]) -> None:
    server, _ = forced
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS,
            tool_choice=NAMED,
            stream=True,  # type: ignore[arg-type]
        )
    )
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals[-1].choices[0].finish_reason == "tool_calls"
    (call,) = finals[-1].choices[0].delta.tool_calls or []
    assert call.index == 0 and call.function is not None and call.function.name == "report_event"
    assert json.loads(call.function.arguments or "") == {"event": "goal", "team": "home"}
    # nothing of the call's JSON leaks into content chunks before it
    assert not any(c.choices and c.choices[0].delta.content for c in chunks[:-1] if c is not finals[-1])


def test_the_openai_client_reads_the_call(forced: tuple[ThreadedServer, ToolFakeEngine]) -> None:
    server, _ = forced
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    out = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hi"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice=NAMED,  # type: ignore[arg-type]
    )
    calls = out.choices[0].message.tool_calls or []
    assert out.choices[0].finish_reason == "tool_calls" and calls[0].function.name == "report_event"  # type: ignore[union-attr]


def test_auto_runs_the_parser_and_plain_text_stays_content() -> None:
    engine = ToolFakeEngine(words=("sure ", '<tool_call>{"name": "no_event", "arguments": {}}</tool_call>'))
    with fake_engine_server(engine) as server:
        choice = _chat(server, tools=TOOLS).json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "sure "
        assert choice["message"]["tool_calls"][0]["function"] == {"name": "no_event", "arguments": "{}"}
    with fake_engine_server(ToolFakeEngine(words=("just", " text"))) as server:
        choice = _chat(server, tools=TOOLS).json()["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "just text"
        assert choice["message"].get("tool_calls") is None


def test_a_forced_call_cut_off_by_max_tokens_is_not_a_call() -> None:
    engine = ToolFakeEngine(words=('{"event": ', '"goal"', "}"))
    with fake_engine_server(engine) as server:
        choice = _chat(server, tools=TOOLS, tool_choice=NAMED, max_tokens=2).json()["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["content"] == '{"event": "goal"'


# -- the real engine: tiny Qwen3-VL (its template renders tools) ------------------------------------

BUDGET = VideoBudget(
    max_seconds=8, fps=2, max_frames=8, min_pixels=4 * 32 * 32, max_pixels=16 * 32 * 32, max_prompt_tokens=1024,
    max_output_tokens=64,
)  # fmt: skip
CLIP = VideoSpec(width=160, height=120, fps=10, seconds=2.0)


@pytest.fixture(scope="module")
def qwen3(
    tiny_model_dir: Callable[[Family], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # no free whitespace inside forced JSON: a random model would otherwise pad to max_tokens
    structured = ["--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
    log_dir = tmp_path_factory.mktemp("tools")
    with ServerProcess.tiny(
        tiny_model_dir(Family.QWEN3_VL), Family.QWEN3_VL, BUDGET, log_dir, engine_flags=structured
    ).serving() as proc:
        yield proc


def _video_messages() -> list[Any]:
    part = {"type": "video_url", "video_url": {"url": data_url(make_video(CLIP))}}
    return [{"role": "user", "content": [part, {"type": "text", "text": "Report the event."}]}]


@pytest.mark.engine
def test_engine_named_tool_choice_yields_a_valid_call(qwen3: ServerProcess) -> None:
    client = openai.OpenAI(base_url=qwen3.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    out = client.chat.completions.create(
        model="tiny",
        messages=_video_messages(),
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice=NAMED,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=64,
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "report_event"  # type: ignore[union-attr]
    jsonschema.validate(json.loads(call.function.arguments), EVENT)  # type: ignore[union-attr]
    plain = client.chat.completions.create(model="tiny", messages=_video_messages(), max_tokens=1)
    # the tools went into the prompt through the template
    assert (
        out.usage is not None and plain.usage is not None and out.usage.prompt_tokens > plain.usage.prompt_tokens + 50
    )


@pytest.mark.engine
def test_engine_required_tool_choice_yields_calls(qwen3: ServerProcess) -> None:
    body = {
        "messages": _video_messages(),
        "tools": TOOLS[:1],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 0,
        "max_tokens": 64,
    }
    resp = httpx.post(qwen3.url + "/v1/chat/completions", json=body, timeout=300)
    assert resp.status_code == 200, resp.text
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "report_event"
    jsonschema.validate(json.loads(call["function"]["arguments"]), EVENT)


@pytest.mark.engine
def test_engine_conversation_with_a_tool_result(qwen3: ServerProcess) -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "report_event", "arguments": '{"event":"goal","team":"home"}'},
    }
    messages = [
        *_video_messages(),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "recorded"},
        {"role": "user", "content": "Anything else?"},
    ]
    resp = httpx.post(
        qwen3.url + "/v1/chat/completions", json={"messages": messages, "tools": TOOLS, "max_tokens": 2}, timeout=300
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


def test_vllm_hermes_parser_reads_qwen_tool_calls(tiny_model_dir: Callable[[Family], Path]) -> None:
    """The auto path's parser is vLLM's own (``hermes``), on the checkpoint's tokenizer (no engine needed)."""
    engine = VllmEngine(EngineConfig(tiny_model_dir(Family.QWEN3_VL), "tiny", 1024, {}, {}))
    engine._processor, engine._tokenizer = engine._load_processor()
    call_json = '{"name": "report_event", "arguments": {"event": "goal", "team": "away"}}'
    text = f"Let me report.\n<tool_call>\n{call_json}\n</tool_call>"
    content, calls = engine.parse_tool_calls(text)
    assert content == "Let me report.\n"
    (call,) = calls
    assert call.name == "report_event" and json.loads(call.arguments) == {"event": "goal", "team": "away"}
    assert engine.parse_tool_calls("no calls here") == ("no calls here", ())
