import { expect, test } from "bun:test";
import { badIds, parseMode, parsePage } from "../../app/cluster/args.ts";
import { connIds, nodeOf } from "../../app/cluster/connid.ts";
import { decodeQuery, encodeQuery } from "../../app/cluster/scatter.ts";
import { firstAfter } from "../../app/cluster/page.ts";
import { waitFor } from "../helpers/procs.ts";

test("cluster args - a bad id is refused naming the part", () => {
  expect(badIds({ svc: "s", user: "a.b" })?.error).toBe("user must match ^[A-Za-z0-9_-]{1,64}$");
  expect(badIds({ svc: "*", user: "u" })?.error).toStartWith("svc must match");
  expect(badIds({ svc: "s", user: "u", conn: "n1" })?.error).toStartWith("conn must be <node>.<n>");
  expect(badIds({ svc: "s", user: "u", conn: "n1.a.b" })?.error).toStartWith("conn must be");
  expect(badIds({ svc: "s", user: "u", conn: "n1.abc-1" })).toBeNull();
});

test("cluster args - limit past the cap, a zero limit and a bad after are 400s; defaults apply", () => {
  expect(parsePage("1001", undefined)).toEqual({ error: "limit must be at most 1000", status: 400 });
  expect(parsePage("99999999999", undefined)).toMatchObject({ status: 400 });
  expect(parsePage("0", undefined)).toMatchObject({ status: 400 });
  expect(parsePage("-1", undefined)).toMatchObject({ status: 400 });
  expect(parsePage("10", "a.b")).toEqual({ error: "after must match ^[A-Za-z0-9_-]{1,64}$", status: 400 });
  expect(parsePage(undefined, undefined)).toEqual({ limit: 100, after: "" });
  expect(parseMode("terminal")).toBe("terminal");
  expect(parseMode(undefined)).toBe("reconnect");
  expect(parseMode("forever")).toEqual({ error: "mode must be terminal or reconnect", status: 400 });
});

test("connection ids - name their node, only grow, and a restarted node starts past the ids it gave before", async () => {
  const { connNumbers, openedAt } = await import("../../app/cluster/connid.ts");
  const boot1 = connNumbers();
  const given = Array.from({ length: 500 }, () => boot1());
  for (let i = 1; i < given.length; i++) expect(given[i]).toBeGreaterThan(given[i - 1]);
  expect(Math.abs(openedAt(given[0]) - Date.now())).toBeLessThan(1_000);
  // A restart takes the clock past the millisecond of the last id given (the ids' stated premise).
  await waitFor("the clock past the last id", () => Date.now() > openedAt(given[given.length - 1]));
  const boot2 = connNumbers(); // the same node id after a restart
  expect(boot2()).toBeGreaterThan(given[given.length - 1]);
  const id = connIds("n1")(0);
  expect(nodeOf(id)).toBe("n1");
  expect(badIds({ conn: id })).toBeNull();
  expect(nodeOf("garbage")).toBeNull();
});

test("scatter queries - raw bytes after the JSON head survive the round trip, newlines included", () => {
  const payload = new Uint8Array([10, 0, 255, 10]);
  const q = decodeQuery(encodeQuery({ op: "sendto", args: { conn: "n.x-1" }, payload }, "n"))!;
  expect(q.op).toBe("sendto");
  expect(q.from).toBe("n");
  expect([...q.payload!]).toEqual([...payload]);
  expect(decodeQuery(new TextEncoder().encode("not json"))).toBeNull();
});

test("presence pages - the smallest names after the cursor, sorted, from an unsorted set", () => {
  const names = Array.from({ length: 5_000 }, (_, i) => `u${(i * 7919) % 5_000}`);
  const sorted = [...names].sort();
  expect(firstAfter(names, "", 10)).toEqual(sorted.slice(0, 10));
  expect(firstAfter(names, sorted[100], 50)).toEqual(sorted.slice(101, 151));
  expect(firstAfter(names, sorted[4_998], 50)).toEqual([sorted[4_999]]);
  expect(firstAfter([], "", 5)).toEqual([]);
});
