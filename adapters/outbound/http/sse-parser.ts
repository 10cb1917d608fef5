/** Server-sent events: calls `onEvent` with each event's data and id (comments and retry are ignored). */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private id: string | undefined;
  private event = "message";

  constructor(private readonly onEvent: (data: string, id: string | undefined) => void) {}

  push(chunk: string): void {
    this.buffer += chunk;
    for (let newline = this.buffer.search(/\r\n|\r|\n/); newline !== -1; newline = this.buffer.search(/\r\n|\r|\n/)) {
      // A CR at the very end may be the first half of a CRLF split across chunks: wait for the next.
      if (newline === this.buffer.length - 1 && this.buffer.endsWith("\r")) break;
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      this.line(line);
    }
  }

  /** The stream ended: a held-back final CR still ends its line (an unfinished event is dropped). */
  end(): void {
    if (this.buffer.endsWith("\r")) this.line(this.buffer.slice(0, -1));
    this.buffer = "";
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0 && this.event === "message") this.onEvent(this.data.join("\n"), this.id);
      this.data = [];
      this.event = "message";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}
