/**
 * SSE polling of long calls (SEP-1699), as a gateway policy: a call whose answer has not come after
 * `afterMs` has its SSE stream closed, once; the client reconnects with Last-Event-ID after the
 * stream's `retry` hint and gets what it missed, then the answer, on the resumed stream (which stays
 * open: a client that resumes once must get the answer there). The gateway then holds no connection
 * for a call that waits, until the client polls. Only requests whose stream the transport can close
 * get it: 2025-11-25 sessions with an event store.
 */
import type { Transport } from "@modelcontextprotocol/server";
import { isRequest, isResponse, type JsonRpcId, type JsonRpcMessage } from "../../src/protocol/index.js";

export function pollLongCalls(transport: Transport, afterMs: number): void {
  const timers = new Map<JsonRpcId, NodeJS.Timeout>();
  const done = (id: JsonRpcId) => {
    clearTimeout(timers.get(id));
    timers.delete(id);
  };
  const onmessage = transport.onmessage;
  transport.onmessage = (message, extra) => {
    const close = extra?.closeSSEStream;
    if (close && isRequest(message as JsonRpcMessage)) {
      const id = (message as { id: JsonRpcId }).id;
      // Closed by anyone (here, or by the gateway when the upstream closed its own), it is not closed again.
      const closeOnce = () => {
        done(id);
        close();
      };
      const timer = setTimeout(closeOnce, afterMs);
      timer.unref();
      timers.set(id, timer);
      extra = { ...extra, closeSSEStream: closeOnce };
    }
    onmessage?.(message, extra);
  };
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    if (isResponse(message as JsonRpcMessage)) done((message as { id: JsonRpcId }).id);
    return send(message, options);
  };
  const onclose = transport.onclose;
  transport.onclose = () => {
    for (const id of [...timers.keys()]) done(id);
    onclose?.();
  };
}
