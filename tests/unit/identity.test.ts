import { expect, test } from "bun:test";
import { identityFromCookies } from "../../app/security/identity.ts";

test("reads service and user cookies, decoded", () => {
  expect(identityFromCookies("service=s1; user=u1")).toEqual({ svc: "s1", user: "u1" });
  expect(identityFromCookies('theme=dark; user="u-2"; service=svc_A')).toEqual({ svc: "svc_A", user: "u-2" });
  expect(identityFromCookies("service=s1; user=%75%31")).toEqual({ svc: "s1", user: "u1" });
});

test("refuses anything that could widen or break a subject", () => {
  for (const user of ["a.b", "*", ">", "a b", "a%2Eb", "%2A", "a%00b", "é", "x".repeat(65), "", "a\tb"]) {
    const r = identityFromCookies(`service=s1; user=${user}`);
    expect(r).toHaveProperty("error");
    expect((r as { status: number }).status).toBe(400);
  }
});

test("names the missing cookie", () => {
  expect(identityFromCookies(undefined)).toEqual({ status: 401, error: "cookie service is missing" });
  expect(identityFromCookies("service=s1")).toEqual({ status: 401, error: "cookie user is missing" });
});

test("a name given twice with different values is ambiguous and refused", () => {
  expect(identityFromCookies("service=s1; user=a; user=b")).toMatchObject({ status: 400 });
  expect(identityFromCookies("service=s1; user=a; user=a")).toEqual({ svc: "s1", user: "a" });
});
