"""The official MCP Python SDK (mcp 2.x) as a client of toolgate, in both protocol eras.

Usage: python python_client.py <mcp-url>
Prints `python-sdk: N passed, M failed`; exits non-zero with a message on the first check
that fails.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.shared.exceptions import MCPError

URL = sys.argv[1]
checks = 0


def check(condition, message):
    global checks
    if not condition:
        raise AssertionError(message)
    checks += 1


async def list_all(client):
    tools, cursor, pages = [], None, 0
    while True:
        result = await client.list_tools(cursor=cursor, cache_mode="bypass")
        tools.extend(result.tools)
        pages += 1
        cursor = result.next_cursor
        if not cursor:
            return tools, pages


async def run(mode, expected_version):
    async with Client(URL, mode=mode) as client:
        check(client.protocol_version == expected_version, f"{mode}: negotiated {client.protocol_version}, expected {expected_version}")
        tools, pages = await list_all(client)
        names = [t.name for t in tools]
        check(pages > 1, f"{mode}: expected several pages, got {pages}")
        check(len(names) == len(set(names)), f"{mode}: duplicate tools across pages: {names}")
        for expected in ["restaurants___searchRestaurants", "restaurants___getRestaurant", "restaurants___getMenu", "restaurants___createReservation"]:
            check(expected in names, f"{mode}: {expected} missing from {names}")

        found = await client.call_tool("restaurants___searchRestaurants", {"cuisine": "italian", "city": "Seattle"})
        check(not found.is_error, f"{mode}: search failed: {found.content}")
        check(found.structured_content["total"] == 1, f"{mode}: structured content {found.structured_content}")
        check(found.structured_content["results"][0]["name"] == "Trattoria Lucia", f"{mode}: {found.structured_content}")
        check(json.loads(found.content[0].text) == found.structured_content, f"{mode}: text block differs from structuredContent")

        menu = await client.call_tool("restaurants___getMenu", {"restaurantId": "r-105", "vegetarian": True})
        check(not menu.is_error, f"{mode}: menu failed: {menu.content}")
        dishes = menu.structured_content["result"]
        check(dishes and all(d["vegetarian"] for d in dishes), f"{mode}: vegetarian filter not applied: {dishes}")

        booked = await client.call_tool(
            "restaurants___createReservation",
            {"restaurantId": "r-102", "name": "Ada", "partySize": 4, "time": "2026-12-01T19:30:00Z", "notes": None},
        )
        check(not booked.is_error, f"{mode}: booking failed: {booked.content}")
        check(booked.structured_content["status"] == "confirmed" and booked.structured_content["partySize"] == 4, f"{mode}: {booked.structured_content}")

        invalid = await client.call_tool("restaurants___createReservation", {"restaurantId": "r-102", "name": "Ada", "partySize": 99})
        check(invalid.is_error, f"{mode}: invalid arguments were accepted")
        text = invalid.content[0].text
        check("/partySize" in text and "time" in text, f"{mode}: validation message lacks pointers: {text}")

        missing = await client.call_tool("restaurants___getRestaurant", {"restaurantId": "r-999"})
        check(missing.is_error and "404" in missing.content[0].text, f"{mode}: upstream 404 not reported: {missing.content}")

        try:
            await client.call_tool("restaurants___noSuchTool", {})
            check(False, f"{mode}: unknown tool did not fail")
        except MCPError as e:
            check("Unknown tool" in str(e), f"{mode}: unexpected error for unknown tool: {e}")


async def main():
    try:
        await run("auto", "2026-07-28")
        await run("legacy", "2025-11-25")
    except Exception as e:  # report, then fail: the suite counts this line
        print(f"python-sdk: {type(e).__name__}: {e}", file=sys.stderr)
        print(f"python-sdk: {checks} passed, 1 failed")
        sys.exit(1)
    print(f"python-sdk: {checks} passed, 0 failed")


asyncio.run(main())
