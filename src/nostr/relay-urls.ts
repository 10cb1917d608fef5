/** Relay URLs as the CLI takes them: ws:// or wss:// only. */
export function parseRelayUrls(values: readonly string[] | undefined, flag: string): string[] {
  const urls = values ?? [];
  for (const value of urls) {
    const url = URL.canParse(value) ? new URL(value) : undefined;
    if (!url || (url.protocol !== "ws:" && url.protocol !== "wss:")) throw new Error(`${flag} needs a ws:// or wss:// URL, got ${JSON.stringify(value)}`);
  }
  return [...new Set(urls)];
}
