// The `groups` claim of a production token: a list of group ids joined for the connection's lifetime.
import { expect, test } from "bun:test";
import { identityFromClaims, MAX_CLAIMED_GROUPS } from "../../app/security/auth.ts";

const base = { sub: "u1", svc: "s1", exp: 2_000_000_000 };

test("claims - a token without groups names no groups", () => {
  expect(identityFromClaims(base)).toEqual({ svc: "s1", user: "u1", exp: 2_000_000_000 });
});

test("claims - a token's groups are read, duplicates once", () => {
  expect(identityFromClaims({ ...base, groups: ["room", "vip", "room"] })).toMatchObject({ groups: ["room", "vip"] });
});

test("claims - groups that could widen a subject, or too many, are refused with 403 naming the rule", () => {
  for (const groups of [["a.b"], ["*"], [">"], "room", [1], [""], Array.from({ length: MAX_CLAIMED_GROUPS + 1 }, (_, i) => `g${i}`)]) {
    const r = identityFromClaims({ ...base, groups });
    expect(r).toMatchObject({ status: 403 });
    expect((r as { error: string }).error).toContain("token claim groups is invalid");
  }
});
