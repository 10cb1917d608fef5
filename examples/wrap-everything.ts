/**
 * Example: put an existing stdio MCP server on the bus with `dmcp wrap`, and reach it through
 * `dmcp gateway --http` with an ordinary MCP client.
 *
 *   MCP client --HTTP--> dmcp gateway --NATS--> dmcp wrap --stdio--> server-everything
 *
 * The shell equivalent:
 *   dmcp wrap --name everything --nats $NATS -- node .../server-everything/dist/index.js stdio
 *   dmcp gateway --nats $NATS --http 0
 */
import type { Tool } from "@modelcontextprotocol/client";
import { check, Child, connectHttpClient, DMCP, example, mcpServerBin, NODE, startNats, step, textOf, waitForTools } from "./lib.js";

example("wrap-everything", "dmcp wrap + dmcp gateway --http, called with the MCP SDK client", async () => {
  const nats = await startNats();

  new Child("dmcp wrap", NODE, [DMCP, "wrap", "--name", "everything", "--nats", nats.url, "--", NODE, mcpServerBin("server-everything"), "stdio"]);
  const gateway = new Child("dmcp gateway", NODE, [DMCP, "gateway", "--nats", nats.url, "--http", "0"]);
  const [, url] = await gateway.waitForLine(/dmcp gateway: serving MCP at (\S+)/);
  step(`gateway serving MCP at ${url}`);

  const client = await connectHttpClient(url!);
  const tools = await waitForTools(client, ["echo", "get-sum"]);
  step(`the gateway lists ${tools.size} tools, among them echo and get-sum`);

  // Take the argument names from the schemas the gateway forwarded, rather than assuming them.
  const [echoArg] = properties(tools.get("echo")!, "string");
  const [a, b] = properties(tools.get("get-sum")!, "number");
  check(echoArg !== undefined, "echo takes a string argument");
  check(a !== undefined && b !== undefined, "get-sum takes two number arguments");
  step(`echo takes {${echoArg}}, get-sum takes {${a}, ${b}}`);

  const message = `hello over NATS ${Date.now()}`;
  const echoed = await client.callTool({ name: "echo", arguments: { [echoArg]: message } });
  check(!echoed.isError, `echo returned an error: ${textOf(echoed)}`);
  check(textOf(echoed).includes(message), `echo answered ${JSON.stringify(textOf(echoed))}, expected it to contain ${JSON.stringify(message)}`);
  step(`echo answered ${JSON.stringify(textOf(echoed))}`);

  const sum = await client.callTool({ name: "get-sum", arguments: { [a]: 19, [b]: 23 } });
  check(!sum.isError, `get-sum returned an error: ${textOf(sum)}`);
  check(/\b42\b/.test(textOf(sum)), `get-sum answered ${JSON.stringify(textOf(sum))}, expected 42 in it`);
  step(`get-sum answered ${JSON.stringify(textOf(sum))}`);

  // The namespaced form <service>__<tool> always works too.
  const qualified = await client.callTool({ name: "everything__get-sum", arguments: { [a]: 1, [b]: 2 } });
  check(/\b3\b/.test(textOf(qualified)), `everything__get-sum answered ${JSON.stringify(textOf(qualified))}, expected 3 in it`);
  step(`everything__get-sum answered ${JSON.stringify(textOf(qualified))}`);
});

/** The required properties of a tool's input schema that have the given JSON type, in schema order. */
function properties(tool: Tool, type: string): string[] {
  const schema = tool.inputSchema as { properties?: Record<string, { type?: unknown }>; required?: string[] };
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {})
    .filter(([name, property]) => required.has(name) && property.type === type)
    .map(([name]) => name);
}
