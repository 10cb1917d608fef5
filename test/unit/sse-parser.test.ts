/** The SSE reader of the lean Streamable HTTP client transport. */
import { describe, expect, it } from "vitest";
import { SseParser } from "../../adapters/outbound/http/sse-parser.js";

function parse(chunks: string[]): { data: string; id: string | undefined }[] {
  const events: { data: string; id: string | undefined }[] = [];
  const parser = new SseParser((data, id) => events.push({ data, id }));
  for (const chunk of chunks) parser.push(chunk);
  parser.end();
  return events;
}

describe("SseParser", () => {
  it("reads message events with their ids, across any chunk boundary", () => {
    const stream = 'id: 1\ndata: {"a":1}\n\nid: 2\ndata: {"b":2}\n\n';
    for (let split = 1; split < stream.length; split++) {
      expect(parse([stream.slice(0, split), stream.slice(split)])).toEqual([
        { data: '{"a":1}', id: "1" },
        { data: '{"b":2}', id: "2" },
      ]);
    }
  });

  it("reads CRLF streams split at any point, including between CR and LF", () => {
    const stream = "data: a\r\ndata: b\r\n\r\nid: 9\r\ndata: c\r\n\r\n";
    for (let split = 1; split < stream.length; split++) {
      expect(parse([stream.slice(0, split), stream.slice(split)])).toEqual([
        { data: "a\nb", id: undefined },
        { data: "c", id: "9" },
      ]);
    }
  });

  it("joins multi-line data, accepts CRLF and CR line ends, and skips comments and other event types", () => {
    const events = parse([": keep-alive\r\n", "data: line one\r\ndata:line two\r\n\r\n", "event: ping\ndata: x\n\n", "data: last\r\r"]);
    expect(events).toEqual([
      { data: "line one\nline two", id: undefined },
      { data: "last", id: undefined },
    ]);
  });

  it("ignores events without data (priming events)", () => {
    expect(parse(["id: 7\n\n", 'data: {"ok":true}\n\n'])).toEqual([{ data: '{"ok":true}', id: "7" }]);
  });
});
