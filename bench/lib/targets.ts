/** A target of issue 14 (or an earlier one) and what this run measured against it: reported, never enforced. */
export interface TargetLine {
  target: string;
  /** The measured value, as printed. */
  measured?: string;
  met?: boolean;
  /** Why there is no figure (a chain or measurement left out of this run). */
  missing?: string;
}

export function formatTargets(lines: TargetLine[]): string {
  return lines
    .map((line) => {
      if (line.missing !== undefined) return `${line.target}: not measured (${line.missing})`;
      return `${line.target}: ${line.measured}: ${line.met ? "MET" : "NOT MET"}`;
    })
    .join("\n");
}
