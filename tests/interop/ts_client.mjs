// The official TypeScript SDK as a client of toolgate over Streamable HTTP:
// v2 (`@modelcontextprotocol/client`) pinned to 2026-07-28, in 'auto' negotiation and in
// 'legacy' mode, and v1 (`@modelcontextprotocol/sdk`, handshake revisions only).
//
// Usage: node ts_client.mjs <mcp-url>
// Prints `ts-sdk: N passed, M failed` and exits non-zero on the first check that fails.

import * as v2 from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
let passed = 0;

function check(condition, message) {
  if (!condition) throw new Error(message);
  passed += 1;
}

const EXPECTED = [
  "restaurants___searchRestaurants",
  "restaurants___getRestaurant",
  "restaurants___getMenu",
  "restaurants___createReservation",
];

async function exercise(label, client, version, expectedVersion) {
  check(version === expectedVersion, `${label}: negotiated ${version}, expected ${expectedVersion}`);
  const names = [];
  const keep = (tools) => {
    for (const tool of tools) {
      check(tool.inputSchema?.type === "object", `${label}: ${tool.name} has no object inputSchema`);
      names.push(tool.name);
    }
  };
  if (client instanceof v2.Client) {
    // v2 walks every page itself when called without a cursor (the gateway serves 2 per page).
    const all = await client.listTools(undefined, { cacheMode: "bypass" });
    check(!all.nextCursor, `${label}: aggregated list still has a nextCursor`);
    keep(all.tools);
  } else {
    let cursor;
    let pages = 0;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      pages += 1;
      keep(page.tools);
      cursor = page.nextCursor;
    } while (cursor && pages < 50);
    check(pages > 1, `${label}: expected several pages, got ${pages}`);
  }
  check(new Set(names).size === names.length, `${label}: duplicate tools across pages: ${names}`);
  for (const name of EXPECTED) check(names.includes(name), `${label}: ${name} missing from ${names}`);

  const found = await client.callTool({
    name: "restaurants___searchRestaurants",
    arguments: { cuisine: "italian", city: "Seattle" },
  });
  check(!found.isError, `${label}: search failed: ${JSON.stringify(found.content)}`);
  check(found.structuredContent?.total === 1, `${label}: ${JSON.stringify(found.structuredContent)}`);
  check(
    found.structuredContent.results[0].name === "Trattoria Lucia",
    `${label}: ${JSON.stringify(found.structuredContent)}`,
  );
  check(
    JSON.stringify(JSON.parse(found.content[0].text)) === JSON.stringify(found.structuredContent),
    `${label}: text block differs from structuredContent`,
  );

  const invalid = await client.callTool({
    name: "restaurants___getRestaurant",
    arguments: { restaurantId: "not-an-id" },
  });
  check(invalid.isError === true, `${label}: invalid arguments were accepted`);
  check(invalid.content[0].text.includes("/restaurantId"), `${label}: ${invalid.content[0].text}`);

  let unknown;
  try {
    await client.callTool({ name: "restaurants___noSuchTool", arguments: {} });
  } catch (e) {
    unknown = e;
  }
  check(unknown && /Unknown tool/.test(String(unknown.message)), `${label}: unknown tool: ${unknown}`);
}

async function withV2(label, mode, expectedVersion, expectedEra) {
  const client = new v2.Client(
    { name: "toolgate-interop-ts", version: "1.0.0" },
    { versionNegotiation: { mode } },
  );
  await client.connect(new v2.StreamableHTTPClientTransport(url));
  try {
    check(client.getProtocolEra() === expectedEra, `${label}: era ${client.getProtocolEra()}, expected ${expectedEra}`);
    await exercise(label, client, client.getNegotiatedProtocolVersion(), expectedVersion);
  } finally {
    await client.close();
  }
}

async function withV1() {
  const client = new V1Client({ name: "toolgate-interop-ts-v1", version: "1.0.0" });
  const transport = new V1Transport(url);
  await client.connect(transport);
  try {
    await exercise("sdk-v1", client, transport.protocolVersion, "2025-11-25");
  } finally {
    await client.close();
  }
}

try {
  await withV2("client-v2 pinned", { pin: "2026-07-28" }, "2026-07-28", "modern");
  await withV2("client-v2 auto", "auto", "2026-07-28", "modern");
  await withV2("client-v2 legacy", "legacy", "2025-11-25", "legacy");
  await withV1();
  console.log(`ts-sdk: ${passed} passed, 0 failed`);
} catch (e) {
  console.error(`ts-sdk: ${e.stack ?? e}`);
  console.log(`ts-sdk: ${passed} passed, 1 failed`);
  process.exit(1);
}
