/** The start of what a peer sent, quoted, for an error or log line that must show it. */
export function excerpt(text: string, maxChars = 200): string {
  if (text.length === 0) return "an empty body";
  return `starting ${JSON.stringify(text.slice(0, maxChars))}${text.length > maxChars ? ` (${text.length} characters)` : ""}`;
}
