/**
 * The gateway's dispatch of MCP 2026-07-28 (stateless) requests: each is checked by the revision's
 * rules (protocol/mcp/stateless.ts); the methods the revision removed are unknown, discovery and
 * listen streams replace initialize and subscribe, and the tasks extension has its own surface. The
 * methods both revisions share (lists, tools/call ...) are left to the session.
 */
import { checkStatelessMeta, ErrorCode, JsonRpcErrorCode, META, REMOVED_METHODS, RequestError, SUPPORTED_PROTOCOL_VERSIONS, TASKS_EXTENSION } from "../../protocol/index.js";
import type { Call } from "../calls/call.js";
import type { GatewayCore } from "../core.js";
import type { SessionTasks } from "../tasks/task-methods.js";
import type { ListenStreams } from "./listen-streams.js";

export type Answer = Promise<Record<string, unknown>> | Record<string, unknown>;

export class StatelessDispatch {
  constructor(
    private readonly core: GatewayCore,
    private readonly listens: ListenStreams,
    private readonly tasks: SessionTasks,
  ) {}

  /** The answer to a 2026-07-28 request, or undefined when its method is one both revisions share. */
  dispatch(call: Call): Answer | undefined {
    checkStatelessMeta(call.params, call.version!);
    if (REMOVED_METHODS.has(call.method)) {
      throw new RequestError(ErrorCode.UnknownTarget, `Method not found: ${call.method} (removed in MCP 2026-07-28)`, { jsonrpcCode: JsonRpcErrorCode.MethodNotFound });
    }
    if (call.method === "server/discover") return this.discover();
    if (call.method === "subscriptions/listen") return this.listens.listen(call);
    return this.tasks.stateless(call);
  }

  private discover(): Record<string, unknown> {
    const { catalog, serverInfo } = this.core;
    const instructions = catalog.instructions.join("\n");
    return {
      supportedVersions: SUPPORTED_PROTOCOL_VERSIONS,
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true, subscribe: true },
        prompts: { listChanged: true },
        completions: {},
        extensions: { ...catalog.extensions, [TASKS_EXTENSION]: {} },
      },
      ...(instructions ? { instructions } : {}),
      _meta: { [META.serverInfo]: serverInfo },
    };
  }
}
