"""One agent framework's own MCP client and tool conversion against toolgate, no LLM.

Usage: python frameworks.py <framework> <era> <mcp-url> <candidates.json> <out.json>
Run by compat.py in the venv that has the framework. Lists the tools the way the framework
does, converts every one into the framework's tool type and into the function-tool form the
framework sends to a model API (checked by model_api_problems), then calls a sample through
the framework's invocation path: the first SAMPLE candidates (compat.py's deterministic
order) that the framework sees, one per document. Writes a JSON report; never raises for a
tool, only records.
"""

import asyncio
import json
import re
import sys
import traceback

SAMPLE = 20
CALL_TIMEOUT = 60
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

framework, era, URL, candidates_path, out_path = sys.argv[1:]
candidates = json.load(open(candidates_path))
report = {"framework": framework, "era": era, "listed": [], "converted": [], "conversion_failures": [],
          "api_problems": [], "strict": {"strict": 0, "not_strict": 0, "reasons": {}}, "calls": [], "notes": []}


def error_text(e):
    text = f"{type(e).__name__}: {e}"
    # Exception groups (anyio task groups) hide the cause: show the leaves.
    if hasattr(e, "exceptions"):
        text += " [" + "; ".join(error_text(x) for x in e.exceptions) + "]"
    return text[:1500]


def strict_violations(schema, path="#"):
    """OpenAI strict function-calling rules (structured outputs): every object closed
    (`additionalProperties: false`) with every property required; no `anyOf` at the root."""
    problems = []
    if not isinstance(schema, dict):
        return problems
    if path == "#" and "anyOf" in schema:
        problems.append("#: anyOf at the root")
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: additionalProperties is not false")
        missing = set(schema.get("properties") or {}) - set(schema.get("required") or [])
        if missing:
            problems.append(f"{path}: properties not required: {sorted(missing)[:5]}")
    for key, child in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(child, dict):
            for name, sub in child.items():
                problems += strict_violations(sub, f"{path}/{key}/{name}")
        elif key in ("items", "additionalProperties", "not", "contains") and isinstance(child, dict):
            problems += strict_violations(child, f"{path}/{key}")
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(child, list):
            for i, sub in enumerate(child):
                problems += strict_violations(sub, f"{path}/{key}/{i}")
    return problems


def model_api_problems(name, parameters, strict):
    """What a model API would refuse in this function tool: the name, parameters that are
    not a JSON Schema object, and, for a tool the framework sends as strict, a schema that
    breaks the strict rules."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    problems = []
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(("name", f"{name!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$"))
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        problems.append(("parameters", f"parameters are not a JSON Schema of type object: {json.dumps(parameters)[:200]}"))
    else:
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as e:
            problems.append(("parameters", f"not a valid JSON Schema: {e.message[:300]} at {list(e.absolute_path)[:8]}"))
        if strict:
            violations = strict_violations(parameters)
            if violations:
                problems.append(("strict", f"sent with strict: true, but {violations[0]} ({len(violations)} violations)"))
    if strict is True:
        report["strict"]["strict"] += 1
    elif strict is False:
        report["strict"]["not_strict"] += 1
    return problems


def converted(mcp_name, tool_name, parameters, strict=None, strict_reason=None):
    report["converted"].append({"tool": mcp_name, "name": tool_name})
    for rule, detail in model_api_problems(tool_name, parameters, strict):
        report["api_problems"].append({"tool": mcp_name, "rule": rule, "detail": detail})
    if strict is False and strict_reason:
        reasons = report["strict"]["reasons"]
        reasons[strict_reason] = reasons.get(strict_reason, 0) + 1


def conversion_failed(mcp_name, e):
    report["conversion_failures"].append({"tool": mcp_name, "error": error_text(e) if isinstance(e, BaseException) else str(e)})


def sample(visible):
    """The first SAMPLE candidates the framework sees, at most one per document."""
    picked, targets = [], set()
    for c in candidates:
        if c["name"] in visible and c["target"] not in targets:
            picked.append(c)
            targets.add(c["target"])
            if len(picked) == SAMPLE:
                break
    return picked


def called(candidate, ok, error=None, output=None):
    report["calls"].append({"tool": candidate["name"], "ok": ok, "error": error,
                            "output": (output if isinstance(output, str) else repr(output))[:300] if output is not None else None})


async def call_all(picked, invoke):
    for c in picked:
        try:
            output = await asyncio.wait_for(invoke(c), CALL_TIMEOUT)
            called(c, True, output=output)
        except BaseException as e:  # noqa: BLE001 - any failure of the framework is recorded
            if isinstance(e, KeyboardInterrupt):
                raise
            called(c, False, error=error_text(e))


# ---------------------------------------------------------------- LangChain


async def langchain():
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langchain_mcp_adapters.client import MultiServerMCPClient

    client = MultiServerMCPClient({"toolgate": {"url": URL, "transport": "streamable_http"}})
    # get_tools() opens a session, reads every page and converts each tool (StructuredTool
    # whose args_schema is the inputSchema); each call then opens its own session.
    tools = await client.get_tools()
    report["listed"] = [t.name for t in tools]
    by_name = {}
    for t in tools:
        try:
            function = convert_to_openai_tool(t)["function"]  # what bind_tools() sends
            converted(t.name, function["name"], function.get("parameters"))
            by_name[t.name] = t
        except Exception as e:
            conversion_failed(t.name, e)

    async def invoke(c):
        message = await by_name[c["name"]].ainvoke({"name": c["name"], "args": c["args"], "id": "call-1", "type": "tool_call"})
        return message.content

    await call_all(sample(by_name), invoke)


# ---------------------------------------------------------------- CrewAI


def crewai_run():
    import crewai_tools.adapters.mcp_adapter as adapter_module
    from crewai.utilities.agent_utils import convert_tools_to_openai_schema
    from crewai_tools import MCPServerAdapter

    # Wrap the adapter's per-tool conversion so that one tool's failure is recorded and
    # does not abort the whole listing (the adapter itself raises on the first failure).
    from crewai.tools import BaseTool

    class Failed(BaseTool):  # stands in for a tool the adapter could not convert
        def _run(self, **kwargs):
            raise RuntimeError("not converted")

    original = adapter_module.CrewAIToolAdapter.adapt
    failures, names = [], {}

    def adapt(self, func, mcp_tool):
        try:
            tool = original(self, func, mcp_tool)
            names[tool.name] = mcp_tool.name
            return tool
        except Exception as e:
            failures.append((mcp_tool.name, e))
            return Failed(name=f"compat-failed-{len(failures)}", description="conversion failed")

    adapter_module.CrewAIToolAdapter.adapt = adapt
    with MCPServerAdapter({"url": URL, "transport": "streamable-http"}, connect_timeout=60) as collection:
        tools = [t for t in collection if not t.name.startswith("compat-failed-")]
        for mcp_name, e in failures:
            conversion_failed(mcp_name, e)
        if failures:
            report["notes"].append(f"unwrapped, MCPServerAdapter raises on the first of these {len(failures)} failures "
                                   "(mcpadapt adapts every tool in one pass): no tool at all is usable")
        report["listed"] = [names[t.name] for t in tools] + [n for n, _ in failures]
        schemas, _, by_sanitized = convert_tools_to_openai_schema(tools)
        by_mcp = {}
        for schema in schemas:
            function = schema["function"]
            tool = by_sanitized[function["name"]]
            mcp_name = names.get(tool.name, tool.name)
            converted(mcp_name, function["name"], function.get("parameters"), strict=function.get("strict"))
            by_mcp[mcp_name] = tool
        for c in sample(by_mcp):
            try:
                output = by_mcp[c["name"]].run(**c["args"])
                called(c, True, output=output)
            except Exception as e:
                called(c, False, error=error_text(e))


# ---------------------------------------------------------------- Strands Agents


def strands():
    from mcp.client.streamable_http import streamable_http_client
    from strands import Agent
    from strands.tools.mcp import MCPClient

    with MCPClient(lambda: streamable_http_client(URL)) as client:
        # list_tools_sync() reads one page; the agent's tool provider reads all
        # (_list_all_tools_sync, what Agent(tools=[client]) uses).
        tools = client._list_all_tools_sync() if hasattr(client, "_list_all_tools_sync") else client.list_tools_sync()
        report["listed"] = [t.mcp_tool.name for t in tools]
        by_mcp = {}
        for t in tools:
            try:
                spec = t.tool_spec  # the Bedrock/OpenAI/... toolSpec the model providers format
                converted(t.mcp_tool.name, spec["name"], spec["inputSchema"]["json"])
                by_mcp[t.mcp_tool.name] = t
            except Exception as e:
                conversion_failed(t.mcp_tool.name, e)
        picked = sample(by_mcp)
        # Direct tool calls through an Agent (agent.tool.<name>(...)): the agent's tool
        # executor runs MCPAgentTool.stream(); no model is called.
        agent = Agent(tools=[by_mcp[c["name"]] for c in picked], model=_NoModel(), callback_handler=None)
        for c in picked:
            name = by_mcp[c["name"]].tool_name
            try:
                result = getattr(agent.tool, name)(record_direct_tool_call=False, **c["args"])
                if result.get("status") != "success":
                    called(c, True, output=f"status={result.get('status')}: {json.dumps(result.get('content'))[:200]}")
                else:
                    called(c, True, output=json.dumps(result.get("content"))[:300])
            except Exception as e:
                called(c, False, error=error_text(e))


def _NoModel():
    from strands.models.model import Model

    class NoModel(Model):  # never asked: only direct tool calls are made
        def update_config(self, **kwargs):
            pass

        def get_config(self):
            return {}

        async def structured_output(self, *args, **kwargs):
            raise RuntimeError("no model in the compatibility judge")
            yield

        async def stream(self, *args, **kwargs):
            raise RuntimeError("no model in the compatibility judge")
            yield

    return NoModel()


# ---------------------------------------------------------------- LlamaIndex


async def llama_index():
    from llama_index.tools.mcp import BasicMCPClient, McpToolSpec

    client = BasicMCPClient(URL)
    spec = McpToolSpec(client=client)
    # to_tool_list_async(): one list_tools() request (the first page); a FunctionTool per
    # tool with an fn_schema pydantic model built from the inputSchema. One tool it cannot
    # convert makes the whole call raise; then the same method is run tool by tool (same
    # McpToolSpec, so its model cache carries over as in one pass) to find which.
    try:
        tools = await spec.to_tool_list_async()
    except Exception as e:
        report["notes"].append(f"McpToolSpec.to_tool_list_async() raised, so no tool at all is usable: {error_text(e)[:300]}")
        listed = await spec.fetch_tools()
        tools = []
        for mcp_tool in listed:
            async def one(tool=mcp_tool):
                return [tool]
            spec.fetch_tools = one
            try:
                tools += await spec.to_tool_list_async()
            except Exception as e:
                conversion_failed(mcp_tool.name, e)
        report["listed"] = [t.name for t in listed]
    report["listed"] = report["listed"] or [t.metadata.name for t in tools]
    by_mcp = {}
    for t in tools:
        try:
            function = t.metadata.to_openai_tool()["function"]
            converted(t.metadata.name, function["name"], function.get("parameters"))
            by_mcp[t.metadata.name] = t
        except Exception as e:
            conversion_failed(t.metadata.name, e)

    async def invoke(c):
        output = await by_mcp[c["name"]].acall(**c["args"])
        return str(output.content)

    await call_all(sample(by_mcp), invoke)


# ---------------------------------------------------------------- OpenAI Agents SDK


async def openai_agents():
    from agents import Agent, RunContextWrapper
    from agents.mcp import MCPServerStreamableHttp
    from agents.models.openai_responses import Converter
    from agents.strict_schema import ensure_strict_json_schema
    from agents.tool_context import ToolContext

    async with MCPServerStreamableHttp(params={"url": URL, "timeout": 30}, cache_tools_list=True,
                                       client_session_timeout_seconds=60) as server:
        # The agent's own path: Agent.get_all_tools() lists every page
        # (MCPServer.list_tools) and makes FunctionTools (MCPUtil.to_function_tool), with
        # strict schemas where ensure_strict_json_schema succeeds (non-strict otherwise).
        agent = Agent(name="compat", mcp_servers=[server], mcp_config={"convert_schemas_to_strict": True})
        context = RunContextWrapper(None)
        tools = await agent.get_all_tools(context)
        listed = await server.list_tools(context, agent)
        report["listed"] = [t.name for t in listed]
        raw = {t.name: t for t in listed}
        api = Converter.convert_tools(tools, []).tools  # the Responses API tools
        by_mcp = {}
        for tool, param in zip(tools, api):
            mcp_name = tool.name
            reason = None
            if not tool.strict_json_schema and mcp_name in raw:
                schema = raw[mcp_name].input_schema if hasattr(raw[mcp_name], "input_schema") else raw[mcp_name].inputSchema
                schema = json.loads(json.dumps(schema))
                schema.setdefault("properties", {})
                try:  # the same call MCPUtil.to_function_tool makes, to learn why it fell back
                    ensure_strict_json_schema(schema, _reject_open_objects=True)
                    reason = "fell back to non-strict (reason not reproduced)"
                except Exception as e:
                    reason = re.sub(r"\{.*", "{...}", str(e))[:120]
            converted(mcp_name, param.get("name"), param.get("parameters"), strict=param.get("strict"), strict_reason=reason)
            by_mcp[mcp_name] = tool

        async def invoke(c):
            arguments = json.dumps(c["args"])
            tool = by_mcp[c["name"]]
            ctx = ToolContext(context=None, tool_name=tool.name, tool_call_id="call-1", tool_arguments=arguments)
            return await tool.on_invoke_tool(ctx, arguments)

        await call_all(sample(by_mcp), invoke)


# ---------------------------------------------------------------- Pydantic AI


async def pydantic_ai():
    from fastmcp.client import Client as FastMCPClient
    from pydantic_ai import Agent
    from pydantic_ai.mcp import MCPToolset
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart, RetryPromptPart
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    # MCPToolset(url) negotiates with mode="auto" (2026-07-28 against toolgate); a
    # FastMCP Client with mode="legacy" gives the initialize handshake.
    toolset = MCPToolset(URL) if era == "modern" else MCPToolset(FastMCPClient(URL, mode="legacy", timeout=60))
    seen = {}

    def model_function(messages, info):
        if not seen.get("tools"):
            seen["tools"] = info.function_tools
        for part in messages[-1].parts:
            if isinstance(part, ToolReturnPart):
                seen["result"] = ("return", part.content)
            elif isinstance(part, RetryPromptPart):
                seen["result"] = ("retry", part.content)
        pending = seen.pop("pending", None)
        if pending is None:
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart(pending["tool"], pending["args"], tool_call_id="call-1")])

    async with toolset:
        agent = Agent(FunctionModel(model_function), toolsets=[toolset])
        await agent.run("list")  # the model sees the agent's tool definitions: info.function_tools
        tool_defs = seen["tools"]
        listed = await toolset.list_tools()
        report["listed"] = [t.name for t in listed]
        # The OpenAI Responses model's own request preparation: its JSON-schema transformer
        # (strict where the schema allows it) and its mapping to function tools.
        openai = OpenAIResponsesModel("gpt-5", provider=OpenAIProvider(api_key="unused"))
        params = openai.customize_request_parameters(ModelRequestParameters(function_tools=list(tool_defs)))
        by_mcp = {}
        for original, td in zip(tool_defs, params.function_tools):
            try:
                param = openai._map_tool_definition(td, visibility="visible")
                reason = None if td.strict else "schema not strict-compatible (OpenAIJsonSchemaTransformer)"
                converted(original.name, param["name"], param["parameters"], strict=param.get("strict"), strict_reason=reason)
                by_mcp[original.name] = td
            except Exception as e:
                conversion_failed(original.name, e)

        async def invoke(c):
            seen["pending"] = {"tool": c["name"], "args": c["args"]}
            seen.pop("result", None)
            run = await agent.run(f"call {c['name']}")  # FunctionModel asks for the tool call
            kind, content = seen.get("result", ("none", run.output))
            if kind == "none":
                raise RuntimeError(f"the agent did not call the tool: {run.output}")
            return f"{kind}: {content}"

        await call_all(sample(by_mcp), invoke)


RUNNERS = {"langchain": langchain, "crewai": crewai_run, "strands": strands, "llama-index": llama_index,
           "openai-agents": openai_agents, "pydantic-ai": pydantic_ai}

try:
    runner = RUNNERS[framework]
    if asyncio.iscoroutinefunction(runner):
        asyncio.run(runner())
    else:
        runner()
except BaseException as e:  # noqa: BLE001 - the report says what broke
    report["fatal"] = error_text(e)
    report["traceback"] = traceback.format_exc()[-4000:]
json.dump(report, open(out_path, "w"), indent=1)
print(f"{framework} {era}: {len(report['listed'])} listed, {len(report['converted'])} converted, "
      f"{len(report['conversion_failures'])} failed conversion, "
      f"{sum(c['ok'] for c in report['calls'])}/{len(report['calls'])} calls ok"
      + (f", FATAL {report['fatal']}" if "fatal" in report else ""))
