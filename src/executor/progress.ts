/**
 * Progress tokens, re-tagged per hop. All callers share one upstream session, so two callers' tokens
 * may be equal: the upstream gets a token of this executor's own, and its progress notifications go
 * back to the call they belong to, with the caller's token restored.
 */
type Notify = (method: string, params: Record<string, unknown>) => void;

interface Route {
  callerToken: string | number;
  notify: Notify;
}

export class ProgressRelay {
  private readonly routes = new Map<string, Route>();
  private sequence = 0;

  /** The params to send upstream, and a release to call when the call ends (none when the call asked for no progress). */
  retag(params: Record<string, unknown> | undefined, notify: Notify): { params: Record<string, unknown> | undefined; release?: () => void } {
    const meta = params?._meta as Record<string, unknown> | undefined;
    const callerToken = meta?.progressToken;
    if (typeof callerToken !== "string" && typeof callerToken !== "number") return { params };
    const token = `dmcp-progress-${++this.sequence}`;
    this.routes.set(token, { callerToken, notify });
    return {
      params: { ...params, _meta: { ...meta, progressToken: token } },
      release: () => this.routes.delete(token),
    };
  }

  /** Routes an upstream `notifications/progress` to its call; unknown tokens (late, foreign) are dropped. */
  deliver(params: Record<string, unknown> | undefined): void {
    const token = params?.progressToken;
    const route = typeof token === "string" ? this.routes.get(token) : undefined;
    if (!route) return;
    route.notify("notifications/progress", { ...params, progressToken: route.callerToken });
  }
}
