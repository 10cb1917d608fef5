/** The places the conformance suite is pointed at, and their names in the report. */
export const TARGETS = ["direct", "http", "stdio"] as const;
export type TargetName = (typeof TARGETS)[number];

export const TARGET_TITLES: Record<TargetName, string> = {
  direct: "Direct",
  http: "Bus, HTTP upstream",
  stdio: "Bus, stdio upstream",
};
