/**
 * The SSE streams of a session's requests that can be closed for the client to resume them (HTTP with
 * an event store only; SEP-1699): closed when the upstream closed its own stream, or, with SSE polling,
 * once by the gateway itself when the answer is late.
 */
import type { JsonRpcId } from "../../protocol/index.js";

interface Closer {
  close: () => void;
  poll: NodeJS.Timeout | undefined;
}

export class StreamClosers {
  private readonly closers = new Map<JsonRpcId, Closer>();

  /** `pollMs`: a request still waiting for its answer after this many ms has its stream closed, once; never without it. */
  constructor(private readonly pollMs: number | undefined) {}

  /** Remembers how to close the stream of request `id`. */
  track(id: JsonRpcId, close: () => void): void {
    const closer: Closer = {
      // Closed by anyone (the gateway when the upstream closed its own, or the poll), it is not polled again.
      close: () => {
        clearTimeout(closer.poll);
        close();
      },
      poll: undefined,
    };
    if (this.pollMs) {
      closer.poll = setTimeout(closer.close, this.pollMs);
      closer.poll.unref();
    }
    this.closers.set(id, closer);
  }

  /** Closes the stream of request `id`, if it can be closed. */
  close(id: JsonRpcId): void {
    this.closers.get(id)?.close();
  }

  /** The request is answered: its stream is no longer closed for polling. */
  forget(id: JsonRpcId): void {
    clearTimeout(this.closers.get(id)?.poll);
    this.closers.delete(id);
  }
}
