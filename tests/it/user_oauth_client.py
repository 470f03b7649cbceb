"""The official MCP Python SDK (mcp 2.x) as the agent of the per-user OAuth tests.

Calls one tool with a bearer token, as a user's agent would, and lets the test play the user
who completes URL elicitations in a browser:

    python user_oauth_client.py --url <mcp url> --token <bearer> --tool <name> \
        [--arguments '<json object>'] [--mode legacy|auto]

`legacy` connects with the initialize handshake (2025-11-25), where the server asks for a
URL elicitation with the error -32042 (`data.elicitations[].url`) and the agent calls the tool
again once the user is done; `auto` discovers 2026-07-28, where the server answers with an
`input_required` result embedding `elicitation/create` requests, which the SDK hands to our
elicitation callback and then retries with the responses. Either era may also send an
elicitation request during the call; both are answered the same way.

Protocol, one line each, flushed:
    stdout  ELICIT <url>          a URL elicitation arrived; we then read one line of stdin:
    stdin   done                  the user completed it: accept (legacy: call the tool again)
    stdin   decline               the user refused: decline (legacy: stop, print the error)
    stdout  RESULT <json>         the CallToolResult (by alias, without nulls)
    stdout  ERROR <code> <msg>    the JSON-RPC error the call ended with; code 0 when this
                                  client gave up after 3 elicitation rounds
At most 3 ELICIT rounds. Exits 0 after RESULT or ERROR; non-zero only when the harness itself
fails (cannot connect, a malformed answer...), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, InputRequiredRoundsExceededError, MCPError, UrlElicitationRequiredError
from mcp.client.streamable_http import streamable_http_client

MAX_ROUNDS = 3


def say(line: str) -> None:
    print(line, flush=True)


def log(line: str) -> None:
    print(f"user_oauth_client: {line}", file=sys.stderr, flush=True)


class User:
    """The person at the keyboard, played by the test over stdin."""

    def __init__(self) -> None:
        self.rounds = 0

    def exhausted(self) -> bool:
        return self.rounds >= MAX_ROUNDS

    async def visit(self, url: str) -> bool:
        """Shows `url`; True if the user says they completed it."""
        self.rounds += 1
        say(f"ELICIT {url}")
        # A blocking read on a worker thread: the event loop keeps serving the connection.
        answer = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not answer:
            log("stdin closed while waiting for the user's answer: declining")
            return False
        answer = answer.strip()
        if answer not in ("done", "decline"):
            log(f"unknown answer {answer!r} (expected done or decline): declining")
        return answer == "done"


def error_line(code: int, message: str) -> str:
    return f"ERROR {code} {' '.join(str(message).split())}"


async def run(args: argparse.Namespace) -> str:
    user = User()
    arguments: dict[str, Any] = json.loads(args.arguments)
    if not isinstance(arguments, dict):
        raise SystemExit("--arguments must be a JSON object")

    async def on_elicit(_ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult | types.ErrorData:
        if not isinstance(params, types.ElicitRequestURLParams):
            log(f"form elicitation declined: {params.message}")
            return types.ElicitResult(action="decline")
        if user.exhausted():
            log(f"more than {MAX_ROUNDS} elicitations: cancelling {params.url}")
            return types.ElicitResult(action="cancel")
        accepted = await user.visit(params.url)
        return types.ElicitResult(action="accept" if accepted else "decline")

    headers = {"Authorization": f"Bearer {args.token}"}
    # The SDK's own timeouts (create_mcp_http_client): a tool call may take a while.
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        client = Client(
            streamable_http_client(args.url, http_client=http),
            mode=args.mode,
            elicitation_callback=on_elicit,
            input_required_max_rounds=MAX_ROUNDS,
            # Every call must reach the gateway: a cached listing is fine, a cached refusal is not.
            cache=None,
        )
        async with client:
            log(f"connected: {client.protocol_version}")
            while True:
                try:
                    result = await client.call_tool(args.tool, arguments)
                except InputRequiredRoundsExceededError as e:
                    return error_line(0, str(e))
                except MCPError as e:
                    if e.code != types.URL_ELICITATION_REQUIRED:
                        return error_line(e.code, e.message)
                    elicitations = UrlElicitationRequiredError.from_error(e.error).elicitations
                    if not elicitations:
                        return error_line(e.code, e.message)
                    if user.exhausted():
                        return error_line(0, f"gave up after {MAX_ROUNDS} elicitation rounds: {e.message}")
                    # One round: the user visits every URL the error names, then we retry.
                    for elicitation in elicitations:
                        if user.exhausted() or not await user.visit(elicitation.url):
                            return error_line(e.code, e.message)
                    continue
                return "RESULT " + json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Call one MCP tool as a user's agent, completing URL elicitations on cue (see the module doc).",
    )
    parser.add_argument("--url", required=True, help="the MCP endpoint, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument("--token", required=True, help="the bearer token of the calling user")
    parser.add_argument("--tool", required=True, help="the tool to call")
    parser.add_argument("--arguments", default="{}", help="the tool's arguments, a JSON object (default {})")
    parser.add_argument("--mode", choices=["legacy", "auto"], default="auto", help="legacy: 2025-11-25 handshake; auto: 2026-07-28")
    args = parser.parse_args()
    try:
        outcome = asyncio.run(run(args))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - a harness failure: say why, exit non-zero
        traceback.print_exc()
        log(f"failed against {args.url}: {describe(e)}")
        sys.exit(2)
    say(outcome)


def describe(e: BaseException) -> str:
    """The innermost causes of an exception (task groups wrap connection errors)."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in e.exceptions)
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    main()
