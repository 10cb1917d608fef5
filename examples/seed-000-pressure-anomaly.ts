/**
 * Example: the "Example Flow" of the dMCP proposal (seeds/000), with native agents on the bus.
 *
 *   sensor ──context_update──▶ plant.anomalies ──▶ planner ──prompt_request──▶ model-executor
 *                                                     │    ◀──prompt_response──┘
 *                                                     └──context_update──▶ plant.plans ──▶ control
 *                                                                                           │
 *   MCP client ◀──HTTP── dmcp gateway ◀── plant.actions ◀──context_update───────────────────┘
 *
 * Four agents, each with its own NATS connection, never call each other directly: the only request
 * is the planner's prompt_request to the model executor (agent.call over the bus); everything else
 * is context published on topics. The model executor puts a model behind a small `ModelClient`
 * interface; here it is a deterministic rulebook, so the example can check every step, but an LLM
 * client fits the same interface. An ordinary MCP client watches through `dmcp gateway --http`: it
 * subscribes to dmcp://context/plant.actions, reads it, lists and calls the agents' tools, and replays
 * plant.anomalies with dmcp_context_history.
 */
import * as z from "zod";
import { Agent, type ContextEvent } from "../src/agent/index.js";
import {
  agentLogger,
  check,
  connectHttpClient,
  connectParticipant,
  example,
  startAgent,
  startGateway,
  startNats,
  step,
  structuredOf,
  textOf,
  waitFor,
  waitForTools,
} from "./lib.js";

// ---------------------------------------------------------------------------------------------------
// The model behind the model executor

/** What the model executor needs from a model: a prompt in, a completion out. */
export interface ModelClient {
  readonly model: string;
  complete(prompt: string): Promise<string>;
}

/**
 * A deterministic stand-in for an LLM: reads the unit and the reading out of the prompt and answers
 * with numbered mitigation steps from a rulebook. The same prompt always gets the same completion.
 */
class RulebookModel implements ModelClient {
  readonly model = "plant-rulebook-1 (deterministic)";

  async complete(prompt: string): Promise<string> {
    const unit = /^Unit: (\S+)$/m.exec(prompt)?.[1];
    const reading = /^Pressure: ([\d.]+) bar \(allowed ([\d.]+)-([\d.]+) bar\)$/m.exec(prompt);
    if (!unit || !reading) throw new Error("the prompt names no unit and pressure reading; cannot suggest steps");
    const [bar, min, max] = reading.slice(1).map(Number) as [number, number, number];
    let steps: string[];
    if (bar > max) {
      const cut = Math.ceil(((bar - max) / max) * 100);
      steps = [`open relief valve RV-${unit}`, `reduce the feed rate of ${unit} by ${cut}%`, `hold ${unit} below ${max} bar and re-check in 5 minutes`];
    } else if (bar < min) {
      steps = [`close the drain valve of ${unit}`, `start the standby feed pump of ${unit}`, `raise ${unit} to at least ${min} bar and re-check in 5 minutes`];
    } else {
      steps = [`no action: ${unit} is within its range`];
    }
    return steps.map((text, i) => `${i + 1}. ${text}`).join("\n");
  }
}

/** The model executor: a native agent whose one tool hands a prompt to its ModelClient. */
function modelExecutor(agent: Agent, model: ModelClient): Agent {
  return agent.tool(
    "complete",
    {
      description: "Completes a prompt with the plant's model (answers with numbered steps)",
      input: z.object({ prompt: z.string().min(1).max(10_000).describe("the prompt") }),
      annotations: { readOnlyHint: true },
    },
    async ({ prompt }) => {
      try {
        return { model: model.model, completion: await model.complete(prompt) };
      } catch (err) {
        // A model that cannot answer is a tool error the caller can read, not a protocol error.
        return { content: [{ type: "text", text: err instanceof Error ? err.message : String(err) }], isError: true };
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------------
// What travels on the topics

interface Anomaly {
  anomaly_id: string;
  message: string;
  unit: string;
  pressure_bar: number;
  min_bar: number;
  max_bar: number;
}

interface Plan {
  anomaly_id: string;
  unit: string;
  model: string;
  steps: string[];
}

interface Action {
  anomaly_id: string;
  unit: string;
  executed: string[];
  status: "executed";
}

/** The prompt the planner sends for an anomaly. */
function promptFor(anomaly: Anomaly): string {
  return [
    "You plan mitigations for a chemical plant. A sensor reported an anomaly.",
    `Anomaly: ${anomaly.message}`,
    `Unit: ${anomaly.unit}`,
    `Pressure: ${anomaly.pressure_bar} bar (allowed ${anomaly.min_bar}-${anomaly.max_bar} bar)`,
    "Answer with numbered mitigation steps, one per line.",
  ].join("\n");
}

/** The numbered lines of a completion. */
function stepsOf(completion: string): string[] {
  return completion
    .split("\n")
    .map((line) => /^\s*\d+\.\s+(.+)$/.exec(line)?.[1]?.trim())
    .filter((line): line is string => line !== undefined);
}

const ANOMALIES: Anomaly[] = [
  { anomaly_id: "A-1", message: "Pressure anomaly detected", unit: "reactor-2", pressure_bar: 9.7, min_bar: 2, max_bar: 8 },
  { anomaly_id: "A-2", message: "Pressure anomaly detected", unit: "boiler-1", pressure_bar: 1.2, min_bar: 2, max_bar: 6 },
];

example("seed-000-pressure-anomaly", "sensor -> planner -> model executor -> control, watched by an MCP client", async () => {
  const nats = await startNats();
  const gateway = await startGateway(nats.url);
  const model = new RulebookModel();

  // --- The agents, each on its own connection, as if on different machines.
  const agent = async (name: string, description: string) =>
    new Agent({ bus: await connectParticipant(nats.url, name), name, version: "1.0.0", description, logger: agentLogger(name), heartbeatMs: 1000, callTimeoutMs: 10_000 });

  const executor = await startAgent(modelExecutor(await agent("model-executor", "Answers prompts with the plant's model"), model));

  const planner = (await agent("planner", "Plans mitigations for plant anomalies")).consumes("plant.anomalies").publishes("plant.plans");
  const plannerErrors: string[] = [];
  planner.subscribe(
    "plant.anomalies",
    async (event: ContextEvent) => {
      const anomaly = event.data as Anomaly;
      // The one request of the flow: a prompt_request to the model executor, answered by a prompt_response.
      const result = await planner.call("model-executor", "complete", { prompt: promptFor(anomaly) });
      if (result.isError) {
        plannerErrors.push(`${anomaly.anomaly_id}: ${textOf(result)}`);
        return;
      }
      const { model: usedModel, completion } = result.structuredContent as { model: string; completion: string };
      const plan: Plan = { anomaly_id: anomaly.anomaly_id, unit: anomaly.unit, model: usedModel, steps: stepsOf(completion) };
      await planner.publish("plant.plans", plan, { correlationId: event.envelope.id });
    },
    { durable: true },
  );
  await startAgent(planner);

  const control = (await agent("control", "Executes mitigation plans on the plant")).consumes("plant.plans").publishes("plant.actions");
  /** What the control agent did to the plant, in order (its "actuator log"). */
  const executed: { anomaly_id: string; unit: string; step: string }[] = [];
  control.tool("executed_actions", { description: "The actions the control agent has executed, oldest first", annotations: { readOnlyHint: true } }, () => ({ actions: executed }));
  control.subscribe(
    "plant.plans",
    async (event: ContextEvent) => {
      const plan = event.data as Plan;
      for (const action of plan.steps) executed.push({ anomaly_id: plan.anomaly_id, unit: plan.unit, step: action });
      const done: Action = { anomaly_id: plan.anomaly_id, unit: plan.unit, executed: plan.steps, status: "executed" };
      await control.publish("plant.actions", done, { correlationId: event.envelope.id });
    },
    { durable: true },
  );
  await startAgent(control);

  const sensor = await startAgent((await agent("sensor", "Watches the plant's pressure gauges")).publishes("plant.anomalies"));
  step(`agents running: ${[sensor, planner, executor, control].map((a) => `${a.name} (${a.instance})`).join(", ")}`);

  // --- The MCP client watches plant.actions through the gateway.
  const client = await connectHttpClient(gateway.url);
  const updated: string[] = [];
  client.setNotificationHandler("notifications/resources/updated", (notification) => void updated.push(notification.params.uri));
  await client.subscribeResource({ uri: "dmcp://context/plant.actions" });
  step("MCP client subscribed to dmcp://context/plant.actions");
  const tools = await waitForTools(client, ["complete", "executed_actions", "dmcp_publish_context", "dmcp_context_history"]);
  step(`the gateway lists ${tools.size} tools: ${[...tools.keys()].sort().join(", ")}`);

  // --- The flow: the sensor publishes, everything else reacts.
  const published: { anomaly: Anomaly; seq: number; id: string }[] = [];
  for (const anomaly of ANOMALIES) {
    const { seq, envelope } = await sensor.publish("plant.anomalies", anomaly);
    published.push({ anomaly, seq, id: envelope.id });
    step(
      `sensor published context_update #${seq} on plant.anomalies: "${anomaly.message}" at ${anomaly.unit} (${anomaly.pressure_bar} bar, allowed ${anomaly.min_bar}-${anomaly.max_bar})`,
    );
  }

  const actions = await waitFor("the control agent's actions on plant.actions", async () => {
    check(plannerErrors.length === 0, `the planner got tool errors: ${plannerErrors.join("; ")}`);
    const stored = await control.history("plant.actions");
    return stored.length >= ANOMALIES.length ? stored : undefined;
  });
  const plans = await planner.history("plant.plans");
  check(plans.length === ANOMALIES.length, `expected ${ANOMALIES.length} plans on plant.plans, found ${plans.length}`);
  check(actions.length === ANOMALIES.length, `expected ${ANOMALIES.length} actions on plant.actions, found ${actions.length}`);

  // --- Check each anomaly's chain: anomaly -> plan (from the model) -> executed action.
  for (const [i, { anomaly, id }] of published.entries()) {
    const expected = stepsOf(await model.complete(promptFor(anomaly)));
    check(expected.length > 0, `the model gave no steps for ${anomaly.anomaly_id}`);
    const plan = plans[i]!;
    const planData = plan.data as Plan;
    check(planData.anomaly_id === anomaly.anomaly_id, `plan #${plan.seq} is for ${planData.anomaly_id}, expected ${anomaly.anomaly_id}`);
    check(
      JSON.stringify(planData.steps) === JSON.stringify(expected),
      `plan for ${anomaly.anomaly_id} has steps ${JSON.stringify(planData.steps)}, the model says ${JSON.stringify(expected)}`,
    );
    check(plan.envelope.correlation_id === id, `plan #${plan.seq} is not correlated with anomaly ${anomaly.anomaly_id}'s update`);
    check(plan.sender === planner.instance, `plan #${plan.seq} was sent by ${plan.sender}, not the planner`);
    step(
      `planner -> model-executor prompt_request for ${anomaly.anomaly_id}; prompt_response from ${planData.model}; plan #${plan.seq} on plant.plans: ${planData.steps.join("; ")}`,
    );

    const action = actions[i]!;
    const actionData = action.data as Action;
    check(actionData.anomaly_id === anomaly.anomaly_id && actionData.status === "executed", `action #${action.seq} is ${JSON.stringify(actionData)}`);
    check(
      JSON.stringify(actionData.executed) === JSON.stringify(expected),
      `action for ${anomaly.anomaly_id} executed ${JSON.stringify(actionData.executed)}, the plan was ${JSON.stringify(expected)}`,
    );
    check(action.envelope.correlation_id === plan.envelope.id, `action #${action.seq} is not correlated with plan #${plan.seq}`);
    const log = executed.filter((entry) => entry.anomaly_id === anomaly.anomaly_id).map((entry) => entry.step);
    check(JSON.stringify(log) === JSON.stringify(expected), `the control agent's log for ${anomaly.anomaly_id} is ${JSON.stringify(log)}, expected ${JSON.stringify(expected)}`);
    step(`control executed ${log.length} steps on ${anomaly.unit} and published action #${action.seq} on plant.actions`);
  }
  const planned = plans.reduce((n, plan) => n + (plan.data as Plan).steps.length, 0);
  check(executed.length === planned, `the control agent executed ${executed.length} steps, ${planned} were planned`);
  check(
    /relief valve/.test(JSON.stringify(actions[0]!.data)) && /standby feed pump/.test(JSON.stringify(actions[1]!.data)),
    "overpressure and underpressure got the wrong mitigations",
  );

  // --- What the MCP client saw.
  const target = "dmcp://context/plant.actions";
  await waitFor("notifications/resources/updated for plant.actions", async () => (updated.filter((uri) => uri === target).length >= ANOMALIES.length ? true : undefined), 10_000);
  check(
    updated.every((uri) => uri === target),
    `notifications for URIs the client did not subscribe to: ${updated.join(", ")}`,
  );
  step(`MCP client got ${updated.length} notifications/resources/updated for ${target}`);

  const read = await client.readResource({ uri: target }, { cacheMode: "bypass" });
  const content = read.contents[0] as { text?: string; mimeType?: string; _meta?: Record<string, unknown> } | undefined;
  check(content?.text !== undefined, `resources/read of ${target} returned no text: ${JSON.stringify(read)}`);
  const latest = JSON.parse(content.text) as Action;
  check(
    JSON.stringify(latest) === JSON.stringify(actions.at(-1)!.data),
    `resources/read of ${target} gave ${content.text}, expected the last action ${JSON.stringify(actions.at(-1)!.data)}`,
  );
  check(content._meta?.["io.dmcp/sender"] === control.instance, `the resource's sender is ${String(content._meta?.["io.dmcp/sender"])}, expected ${control.instance}`);
  check(content._meta?.["io.dmcp/seq"] === actions.at(-1)!.seq, `the resource's seq is ${String(content._meta?.["io.dmcp/seq"])}, expected ${actions.at(-1)!.seq}`);
  step(`MCP client read ${target}: ${latest.anomaly_id} at ${latest.unit} ${latest.status} (seq ${actions.at(-1)!.seq}, from ${control.instance})`);

  const { resources } = await client.listResources(undefined, { cacheMode: "bypass" });
  const uris = resources.map((resource) => resource.uri);
  for (const topic of ["plant.anomalies", "plant.plans", "plant.actions"])
    check(uris.includes(`dmcp://context/${topic}`), `resources/list lacks dmcp://context/${topic}: ${uris.join(", ")}`);
  step(`resources/list shows the topics: ${uris.filter((uri) => uri.startsWith("dmcp://context/")).join(", ")}`);

  // The model executor's tool is an MCP tool like any other.
  const direct = await client.callTool({ name: "complete", arguments: { prompt: promptFor(ANOMALIES[0]!) } });
  const answer = structuredOf<{ model: string; completion: string }>(direct, "complete");
  check(
    JSON.stringify(stepsOf(answer.completion)) === JSON.stringify((plans[0]!.data as Plan).steps),
    `complete through MCP answered ${JSON.stringify(answer.completion)}, unlike plan #${plans[0]!.seq}`,
  );
  step(`MCP tools/call complete (the model executor) answered the same steps as the planner got: ${JSON.stringify(answer.completion)}`);
  const unparseable = await client.callTool({ name: "complete", arguments: { prompt: "hello" } });
  check(unparseable.isError === true && /cannot suggest steps/.test(textOf(unparseable)), `complete with a useless prompt answered ${JSON.stringify(unparseable)}`);
  step(`a prompt the model cannot use comes back as a tool error: ${JSON.stringify(textOf(unparseable))}`);

  const log = structuredOf<{ actions: typeof executed }>(await client.callTool({ name: "executed_actions", arguments: {} }), "executed_actions");
  check(JSON.stringify(log.actions) === JSON.stringify(executed), `executed_actions through MCP answered ${JSON.stringify(log.actions)}`);
  step(`MCP tools/call executed_actions (the control agent) lists ${log.actions.length} executed steps`);

  // Replay the anomalies through the gateway.
  const history = structuredOf<{ topic: string; updates: { seq: number; sender_id: string; data: Anomaly }[] }>(
    await client.callTool({ name: "dmcp_context_history", arguments: { topic: "plant.anomalies" } }),
    "dmcp_context_history",
  );
  check(history.updates.length === ANOMALIES.length, `dmcp_context_history replayed ${history.updates.length} anomalies, expected ${ANOMALIES.length}`);
  for (const [i, update] of history.updates.entries()) {
    check(update.seq === published[i]!.seq, `replayed update ${i} has seq ${update.seq}, expected ${published[i]!.seq}`);
    check(update.sender_id === sensor.instance, `replayed update ${i} was sent by ${update.sender_id}, expected ${sensor.instance}`);
    check(JSON.stringify(update.data) === JSON.stringify(ANOMALIES[i]), `replayed update ${i} is ${JSON.stringify(update.data)}`);
  }
  step(`MCP tools/call dmcp_context_history replayed plant.anomalies: ${history.updates.map((u) => `#${u.seq} ${u.data.anomaly_id} ${u.data.unit}`).join(", ")}`);
});
