/**
 * Example: the Claude Desktop shape. The MCP client starts `dmcp gateway --stdio` as its server
 * and talks MCP over the gateway's stdin/stdout; the actual server (server-memory, a knowledge graph
 * kept in a file) runs elsewhere, put on the bus by `dmcp wrap`.
 *
 *   MCP client --stdio--> dmcp gateway --stdio --NATS--> dmcp wrap --stdio--> server-memory
 *
 * In claude_desktop_config.json that is:
 *   "mcpServers": { "dmcp": { "command": "dmcp", "args": ["gateway", "--stdio", "--nats", "nats://..."] } }
 *
 * The wrapped server inherits `dmcp wrap`'s environment; MEMORY_FILE_PATH (the graph's file) is set
 * for it alone with `env` on the command line (`--env MEMORY_FILE_PATH=...` does the same).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, Child, connectStdioClient, DMCP, example, mcpServerBin, NODE, onCleanup, startNats, step, textOf, waitForTools } from "./lib.js";

interface Graph {
  entities: { name: string; entityType: string; observations: string[] }[];
  relations: { from: string; to: string; relationType: string }[];
}

example("memory-over-stdio", "an MCP client on dmcp gateway --stdio, server-memory behind dmcp wrap", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dmcp-example-memory-"));
  onCleanup("temp dir", () => rm(dir, { recursive: true, force: true }));
  const memoryFile = join(dir, "memory.jsonl");
  const nats = await startNats();

  new Child("dmcp wrap", NODE, [DMCP, "wrap", "--name", "memory", "--nats", nats.url, "--", "env", `MEMORY_FILE_PATH=${memoryFile}`, NODE, mcpServerBin("server-memory")]);
  const { client, transport } = await connectStdioClient("dmcp gateway --stdio", NODE, [DMCP, "gateway", "--stdio", "--nats", nats.url]);
  step(`connected to dmcp gateway --stdio (pid ${transport.pid})`);
  await waitForTools(client, ["create_entities", "create_relations", "read_graph"]);
  step("the memory tools are listed");

  const created = await client.callTool({
    name: "create_entities",
    arguments: {
      entities: [
        { name: "Ada", entityType: "person", observations: ["wrote the first program"] },
        { name: "Analytical Engine", entityType: "machine", observations: ["designed by Babbage"] },
      ],
    },
  });
  check(!created.isError, `create_entities returned an error: ${textOf(created)}`);
  const related = await client.callTool({
    name: "create_relations",
    arguments: { relations: [{ from: "Ada", to: "Analytical Engine", relationType: "programmed" }] },
  });
  check(!related.isError, `create_relations returned an error: ${textOf(related)}`);
  step("created 2 entities and 1 relation");

  const read = await client.callTool({ name: "read_graph", arguments: {} });
  check(!read.isError, `read_graph returned an error: ${textOf(read)}`);
  const graph = (read.structuredContent ?? JSON.parse(textOf(read))) as Graph;
  const ada = graph.entities.find((entity) => entity.name === "Ada");
  check(graph.entities.length === 2, `read_graph returned ${graph.entities.length} entities, expected 2`);
  check(ada?.entityType === "person" && ada.observations.includes("wrote the first program"), `Ada came back as ${JSON.stringify(ada)}`);
  check(
    graph.relations.length === 1 && graph.relations[0]!.from === "Ada" && graph.relations[0]!.relationType === "programmed",
    `read_graph returned relations ${JSON.stringify(graph.relations)}`,
  );
  step(`read_graph returned ${graph.entities.map((entity) => entity.name).join(" and ")}, related by "${graph.relations[0]!.relationType}"`);

  // The wrapped server really kept it in the file we gave it.
  const stored = await readFile(memoryFile, "utf8").catch(() => "");
  check(stored.includes('"Analytical Engine"'), `${memoryFile} does not hold the graph (MEMORY_FILE_PATH not applied?)`);
  step(`the graph is stored in ${memoryFile}`);

  // When the client goes away (Claude Desktop quits), the gateway exits on its own as stdin closes;
  // the SDK would only escalate to SIGTERM after 2 s.
  const started = Date.now();
  await client.close();
  const took = Date.now() - started;
  check(took < 1_900, `dmcp gateway --stdio took ${took} ms to exit after its stdin closed`);
  step(`dmcp gateway --stdio exited ${took} ms after its stdin closed`);
});
