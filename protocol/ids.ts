// The one rule for every name that becomes a subject token: services, users, groups, nodes.
// A dot, `*`, `>` or whitespace would let a name reach other subjects, so none is allowed.
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const ID_RULE_TEXT = "^[A-Za-z0-9_-]{1,64}$";

export function isId(value: string | null | undefined): value is string {
  return typeof value === "string" && ID_PATTERN.test(value);
}

/** The error a caller sees for a bad id, naming the part: `user must match ^[A-Za-z0-9_-]{1,64}$`. */
export function idError(part: string): string {
  return `${part} must match ${ID_RULE_TEXT}`;
}
