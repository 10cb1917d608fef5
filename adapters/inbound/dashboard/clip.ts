/** Texts shown on the dashboard are cut to a bounded length. */
export const TEXT_LIMIT = 300;

export function clip(text: string, limit = TEXT_LIMIT): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}
