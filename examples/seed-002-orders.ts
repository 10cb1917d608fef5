/**
 * Example: the order-processing workflow of seeds/002 on dMCP, with durable delivery.
 *
 *   MCP client ("frontend") --tools/call place_order--> dmcp gateway --> order-service
 *   order-service --OrderPlaced--> orders.placed --durable--> inventory  --> inventory.reserved
 *                                                 --durable--> payment    --> payments.captured
 *                                                 --durable--> notification --> notifications.sent
 *
 * Each service is a native agent with a durable subscription to orders.placed (a JetStream consumer
 * that remembers what the service has handled). The payment service is stopped part-way through
 * while orders keep coming in; the order service keeps accepting them. When a new payment instance
 * starts it picks up where the old one left off. The example checks that every service handled every
 * order exactly once and in order, then replays the orders stream with agent.history and with the
 * gateway's dmcp_context_history tool.
 */
import * as z from "zod";
import { Agent, type ContextEvent } from "../src/agent/index.js";
import type { Bus } from "../src/bus/connection.js";
import {
  agentLogger,
  check,
  connectHttpClient,
  connectParticipant,
  example,
  sleep,
  startAgent,
  startGateway,
  startNats,
  step,
  structuredOf,
  waitFor,
  waitForTools,
} from "./lib.js";

const ORDERS = 20;
/** Orders placed before the payment service goes down, and while it is down. */
const BEFORE_OUTAGE = 7;
const DURING_OUTAGE = 7;

interface Item {
  product_id: string;
  quantity: number;
  price: number;
}

/** The OrderPlaced event (the envelope carries id, timestamp and sender: the header of seeds/002). */
interface OrderPlaced {
  event_type: "OrderPlaced";
  schema_version: "1.0";
  order_id: string;
  customer_id: string;
  items: Item[];
  total_amount: number;
  currency: "USD";
}

/** One order a service handled: its "database" row, which survives the service's restarts. */
interface Handled {
  order_id: string;
  seq: number;
  instance: string;
}

const PRODUCTS: Record<string, number> = { "P-101": 25, "P-205": 100, "P-307": 12.5 };

/** The n-th order the frontend places (deterministic). */
function orderRequest(n: number): { customer_id: string; items: Item[] } {
  const items: Item[] = [{ product_id: "P-101", quantity: 1 + (n % 3), price: PRODUCTS["P-101"]! }];
  if (n % 2 === 0) items.push({ product_id: "P-205", quantity: 1, price: PRODUCTS["P-205"]! });
  if (n % 5 === 0) items.push({ product_id: "P-307", quantity: 4, price: PRODUCTS["P-307"]! });
  return { customer_id: `CUST-${900 + (n % 4)}`, items };
}

example("seed-002-orders", "order workflow with durable subscriptions; the payment service goes down and catches up", async () => {
  const nats = await startNats();
  const gateway = await startGateway(nats.url);
  const agent = (bus: Bus, name: string, description: string) => new Agent({ bus, name, version: "1.0.0", description, logger: agentLogger(name), heartbeatMs: 1000 });

  // --- The order service: validates an order, stores it, publishes OrderPlaced.
  const orderService = agent(await connectParticipant(nats.url, "order-service"), "order-service", "Accepts orders and publishes OrderPlaced").publishes("orders.placed");
  let nextOrder = 1;
  orderService.tool(
    "place_order",
    {
      description: "Places an order; it is confirmed once OrderPlaced is stored on orders.placed",
      input: z.object({
        customer_id: z.string().regex(/^CUST-\d+$/),
        items: z.array(z.object({ product_id: z.string(), quantity: z.number().int().min(1), price: z.number().positive() })).min(1),
      }),
    },
    async ({ customer_id, items }) => {
      const order: OrderPlaced = {
        event_type: "OrderPlaced",
        schema_version: "1.0",
        order_id: `ORD-${String(nextOrder++).padStart(4, "0")}`,
        customer_id,
        items,
        total_amount: items.reduce((sum, item) => sum + item.quantity * item.price, 0),
        currency: "USD",
      };
      const { seq } = await orderService.publish("orders.placed", order);
      return { order_id: order.order_id, seq, total_amount: order.total_amount };
    },
  );
  await startAgent(orderService);

  // --- The three consumers. Their ledgers stand for their databases: they outlive an instance.
  const ledgers = new Map<string, Handled[]>([
    ["inventory", []],
    ["payment", []],
    ["notification", []],
  ]);
  const stock = new Map<string, number>([
    ["P-101", 1000],
    ["P-205", 1000],
    ["P-307", 1000],
  ]);

  /** Starts one instance of a consuming service on its own connection. */
  async function startService(
    name: "inventory" | "payment" | "notification",
    output: string,
    handle: (order: OrderPlaced) => Promise<unknown> | unknown,
  ): Promise<{ agent: Agent; bus: Bus }> {
    const bus = await connectParticipant(nats.url, name);
    const service = agent(bus, name, `Handles OrderPlaced: ${output}`).consumes("orders.placed").publishes(output);
    const ledger = ledgers.get(name)!;
    service.subscribe(
      "orders.placed",
      async (event: ContextEvent) => {
        const order = event.data as OrderPlaced;
        const result = await handle(order);
        ledger.push({ order_id: order.order_id, seq: event.seq!, instance: service.instance });
        await service.publish(output, { order_id: order.order_id, ...(result as object) }, { correlationId: event.envelope.id });
      },
      { durable: true },
    );
    await startAgent(service);
    return { agent: service, bus };
  }

  await startService("inventory", "inventory.reserved", (order) => {
    for (const item of order.items) stock.set(item.product_id, stock.get(item.product_id)! - item.quantity);
    return { reserved: order.items.map((item) => `${item.quantity}x${item.product_id}`) };
  });
  const payment = async (order: OrderPlaced) => {
    await sleep(40); // a payment provider round trip: slower than orders come in, so a backlog builds
    return { amount: order.total_amount, currency: order.currency, status: "captured" };
  };
  let payments = await startService("payment", "payments.captured", payment);
  const firstPayment = payments.agent.instance;
  await startService("notification", "notifications.sent", (order) => ({ to: `${order.customer_id.toLowerCase()}@example.com`, template: "order-confirmation" }));
  step("inventory, payment and notification services running, each with a durable subscription to orders.placed");

  // --- The frontend: an MCP client placing orders through the gateway.
  const client = await connectHttpClient(gateway.url);
  await waitForTools(client, ["place_order", "dmcp_context_history"]);
  const placed: { order_id: string; seq: number; total_amount: number }[] = [];
  const placeOrder = async (n: number) => {
    const result = await client.callTool({ name: "place_order", arguments: orderRequest(n) });
    placed.push(structuredOf<{ order_id: string; seq: number; total_amount: number }>(result, "place_order"));
    await sleep(10);
  };

  const started = Date.now();
  for (let n = 1; n <= BEFORE_OUTAGE; n++) await placeOrder(n);
  step(`frontend placed ${placed[0]!.order_id}..${placed.at(-1)!.order_id} through the gateway`);

  // The payment service goes down while orders are still being processed.
  await payments.agent.stop();
  await payments.bus.drain();
  const paidBeforeOutage = ledgers.get("payment")!.length;
  step(`payment service ${firstPayment} stopped with ${paidBeforeOutage} of ${placed.length} orders captured; the rest wait in its durable consumer`);

  for (let n = BEFORE_OUTAGE + 1; n <= BEFORE_OUTAGE + DURING_OUTAGE; n++) await placeOrder(n);
  const downSince = placed.length;
  step(`while payment is down the order service still accepted ${DURING_OUTAGE} orders (${placed[BEFORE_OUTAGE]!.order_id}..${placed.at(-1)!.order_id})`);
  await waitFor("inventory and notification to handle the orders placed so far", async () =>
    ledgers.get("inventory")!.length === placed.length && ledgers.get("notification")!.length === placed.length ? true : undefined,
  );
  check(ledgers.get("payment")!.length === paidBeforeOutage, `the payment ledger grew while the service was down (${ledgers.get("payment")!.length})`);
  step(`meanwhile inventory and notification handled all ${placed.length}; payment still has ${paidBeforeOutage}`);

  // A new payment instance: the durable consumer remembers where the service stopped.
  const restarted = Date.now();
  payments = await startService("payment", "payments.captured", payment);
  check(payments.agent.instance !== firstPayment, "the restarted payment service has a new instance id");
  for (let n = BEFORE_OUTAGE + DURING_OUTAGE + 1; n <= ORDERS; n++) await placeOrder(n);
  step(`payment service back as ${payments.agent.instance}; frontend placed ${placed[downSince]!.order_id}..${placed.at(-1)!.order_id} while it catches up`);

  await waitFor("every service to handle every order", async () => ([...ledgers.values()].every((ledger) => ledger.length >= ORDERS) ? true : undefined), 20_000);
  const caughtUpMs = Date.now() - restarted;
  await sleep(300); // a duplicate delivery would show up here

  // --- Exactly once, in order, for every service.
  const expected = placed.map((order) => order.order_id);
  check(expected.length === ORDERS && new Set(expected).size === ORDERS, `the order service assigned ${JSON.stringify(expected)}`);
  check(
    placed.every((order, i) => i === 0 || order.seq > placed[i - 1]!.seq),
    "OrderPlaced sequences are not increasing",
  );
  for (const [name, ledger] of ledgers) {
    const ids = ledger.map((row) => row.order_id);
    const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
    const missing = expected.filter((id) => !ids.includes(id));
    check(duplicates.length === 0, `${name} handled ${[...new Set(duplicates)].join(", ")} more than once: ${ids.join(" ")}`);
    check(missing.length === 0, `${name} never handled ${missing.join(", ")}`);
    check(JSON.stringify(ids) === JSON.stringify(expected), `${name} handled the orders out of order: ${ids.join(" ")}`);
    check(JSON.stringify(ledger.map((row) => row.seq)) === JSON.stringify(placed.map((order) => order.seq)), `${name} saw other stream sequences than were published`);
  }
  const paid = ledgers.get("payment")!;
  const bySecond = paid.filter((row) => row.instance === payments.agent.instance).length;
  check(
    paid.slice(0, paidBeforeOutage).every((row) => row.instance === firstPayment),
    "orders before the outage were not captured by the first payment instance",
  );
  check(bySecond === ORDERS - paidBeforeOutage, `the restarted payment instance captured ${bySecond} orders, expected ${ORDERS - paidBeforeOutage}`);
  const caughtUp = downSince - paidBeforeOutage;
  check(caughtUp >= DURING_OUTAGE, `only ${caughtUp} orders waited for the payment service`);
  for (const [product, left] of stock) {
    const sold = placed.reduce(
      (n, _order, i) =>
        n +
        orderRequest(i + 1)
          .items.filter((item) => item.product_id === product)
          .reduce((q, item) => q + item.quantity, 0),
      0,
    );
    check(left === 1000 - sold, `stock of ${product} is ${left}, expected ${1000 - sold}`);
  }

  // --- The services' own topics say the same, read through the gateway.
  const history = async (topic: string, args: Record<string, unknown> = {}) =>
    structuredOf<{ updates: { seq: number; sender_id: string; data: Record<string, unknown> }[] }>(
      await client.callTool({ name: "dmcp_context_history", arguments: { topic, ...args } }),
      `dmcp_context_history ${topic}`,
    ).updates;
  for (const topic of ["inventory.reserved", "payments.captured", "notifications.sent"]) {
    const ids = (await history(topic)).map((update) => update.data.order_id);
    check(JSON.stringify(ids) === JSON.stringify(expected), `${topic} holds ${ids.join(" ")}, expected each order once in order`);
  }
  const captured = await history("payments.captured");
  const revenue = captured.reduce((sum, update) => sum + (update.data.amount as number), 0);
  const ordered = placed.reduce((sum, order) => sum + order.total_amount, 0);
  check(revenue === ordered, `payments captured ${revenue} USD, orders total ${ordered} USD`);

  // --- Replaying the orders stream: all of it through the gateway, the outage window with agent.history.
  const replay = await history("orders.placed");
  check(JSON.stringify(replay.map((update) => update.data.order_id)) === JSON.stringify(expected), "dmcp_context_history does not replay the orders in order");
  check(
    replay.every((update) => update.sender_id === orderService.instance),
    "an OrderPlaced came from someone other than the order service",
  );
  const outage = await orderService.history("orders.placed", { from: { seq: placed[paidBeforeOutage]!.seq }, limit: caughtUp });
  check(
    JSON.stringify(outage.map((event) => (event.data as OrderPlaced).order_id)) === JSON.stringify(expected.slice(paidBeforeOutage, downSince)),
    `agent.history from seq ${placed[paidBeforeOutage]!.seq} gave ${outage.map((event) => (event.data as OrderPlaced).order_id).join(" ")}`,
  );
  step(
    `dmcp_context_history replays all ${replay.length} OrderPlaced updates (seq ${replay[0]!.seq}..${replay.at(-1)!.seq}); agent.history from seq ${outage[0]!.seq} replays the ${outage.length} that waited for the payment service`,
  );

  step(`orders placed: ${placed.length} (${ordered} USD) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const [name, ledger] of ledgers) {
    const instances = [...new Set(ledger.map((row) => row.instance))];
    step(
      `${name.padEnd(12)} handled ${ledger.length}/${ORDERS}, exactly once and in order${instances.length > 1 ? ` (${instances.map((id) => `${ledger.filter((row) => row.instance === id).length} by ${id}`).join(", ")})` : ""}`,
    );
  }
  step(
    `payment was down while ${DURING_OUTAGE} orders came in; ${caughtUp} orders were waiting for it when it returned, and ${caughtUpMs} ms later it had captured all ${ORDERS} (${revenue} USD)`,
  );
});
