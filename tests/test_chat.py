"""General chat (issue 11, item 3): requests that are not QA-shaped go to the ``chat`` task,
the whole conversation through each tier's template, with a larger budget and the chat gate."""

from __future__ import annotations

import httpx
import openai
import pytest

from cascade_router.cascade import Cascade
from cascade_router.prompts import build_prompt, clean_chat
from cascade_router.routers import get_router
from cascade_router.server import BackgroundServer, create_app
from cascade_router.server.schemas import ChatCompletionRequest, CompletionRequest, query_from_chat, query_from_prompt
from cascade_router.tiers import Tier


def _chat(messages, **kw):
    return query_from_chat(ChatCompletionRequest(messages=messages, **kw))


@pytest.mark.parametrize("messages, task", [
    ([{"role": "user", "content": "Write a haiku about autumn."}], "chat"),
    ([{"role": "user", "content": "What is the capital of France?"}], "open"),
    ([{"role": "system", "content": "You are a poet."}, {"role": "user", "content": "What rhymes with moon?"}], "chat"),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
      {"role": "user", "content": "What is 2 + 2?"}], "chat"),
    ([{"role": "user", "content": "Passage: Paris is in France.\nQuestion: Where is Paris?"}], "squad"),
    ([{"role": "system", "content": "Passage: Paris is in France."}, {"role": "user", "content": "Where is Paris?"}], "squad"),
])
def test_how_the_server_tells_chat_from_qa(messages, task):
    q = _chat(messages)
    assert q.task == task
    if task == "chat":
        assert q.conversation[-1] == {"role": "user", "content": messages[-1]["content"]}
        assert [t["role"] for t in q.conversation] == [m["role"] for m in messages]
    assert query_from_prompt(CompletionRequest(prompt="Write a haiku about autumn.")).task == "chat"
    assert query_from_prompt(CompletionRequest(prompt="Who wrote Hamlet?")).task == "open"


def test_chat_prompts_keep_every_turn():
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour."}]
    p = build_prompt("Name a colour.", None, "chat", "chat", 64, conversation=conv)
    assert p.messages == conv and p.stop == [] and p.max_tokens == 64
    b = build_prompt("Name a colour.", None, "chat", "base", 64, conversation=conv)
    assert b.text == "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Name a colour.\nAssistant:"
    assert "\nUser:" in b.stop
    with pytest.raises(ValueError, match="end with a user message"):
        build_prompt("x", None, "chat", "chat", 8, conversation=[{"role": "assistant", "content": "x"}])
    assert clean_chat("Line one.\nLine two.<|im_end|>junk") == "Line one.\nLine two."
    # a base model continuing the transcript: the reply ends where it starts a new turn
    assert "\nAssistant:" in b.stop
    assert clean_chat(" Leaves fall.\nAssistant: Leaves fall.\nUser: more") == "Leaves fall."


def test_chat_through_the_server_with_the_openai_client(slm, llm):
    c = Cascade([Tier("slm", slm), Tier("llm", llm)], [get_router("seed-v1")],
                chat_gate=get_router("signal:mean_logprob:-1.0"), chat_gate_label="signal:mean_logprob:-1.0")
    with BackgroundServer(create_app(c)) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="cascade", messages=[{"role": "user", "content": "Write a haiku about autumn."}])
        r = raw.parse()
        ext = r.model_extra["cascade"]
        assert ext["task"] == "chat" and len(r.choices[0].message.content.split()) > 3
        assert ext["max_tokens"] == 256
        assert ext["gates"][0]["router"] == "chat: signal:mean_logprob:-1.0"  # not seed-v1's length rule
        multi = client.chat.completions.create(model="slm", max_tokens=40, messages=[
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Nice to meet you, Ada."},
            {"role": "user", "content": "What is my name?"}])
        assert "Ada" in multi.choices[0].message.content
        qa = httpx.post(srv.url + "/v1/chat/completions", timeout=60, json={"messages": [
            {"role": "user", "content": "Passage: Paris is the capital of France.\nQuestion: What is the capital of France?"}]})
        assert qa.json()["cascade"]["task"] == "squad" and qa.json()["choices"][0]["message"]["content"] == "Paris"


def test_ask_without_a_passage_tells_chat_from_a_short_question(shared_models):
    from click.testing import CliRunner

    from cascade_router.cli import main

    r = CliRunner().invoke(main, ["ask", "-q", "Write a haiku about autumn.", "--threads", "2", "--json"])
    assert r.exit_code == 0, r.output
    import json

    d = json.loads(r.stdout)
    assert len(d["answer"].split()) > 3 and d["decisions"][0]["router"] == "chat: signal:mean_logprob:-1.0"
