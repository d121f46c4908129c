// Membership: the per-node index and the in-memory store with its caps.
import { expect, test } from "bun:test";
import { MembershipIndex } from "../../app/groups/members.ts";
import { MemoryMembershipStore } from "../../app/groups/store.ts";

type Change = [string, string, readonly string[], readonly string[]];

function recorder() {
  const changes: Change[] = [];
  return { changes, fn: (svc: string, user: string, joined: readonly string[], left: readonly string[]) => void changes.push([svc, user, joined, left]) };
}

test("index - a user's record lists its groups and the groups list their members", () => {
  const r = recorder();
  const ix = new MembershipIndex(r.fn);
  ix.apply("s1", "u1", ["a", "b"], 1);
  ix.apply("s1", "u2", ["a"], 2);
  expect(ix.groupsOf("s1", "u1")).toEqual(["a", "b"]);
  expect(ix.members("s1", "a")).toEqual(["u1", "u2"]);
  expect(ix.memberCount("s1", "b")).toBe(1);
  expect(ix.members("s2", "a")).toEqual([]);
  expect(r.changes).toEqual([
    ["s1", "u1", ["a", "b"], []],
    ["s1", "u2", ["a"], []],
  ]);
});

test("index - a new record reports only the groups joined and left", () => {
  const r = recorder();
  const ix = new MembershipIndex(r.fn);
  ix.apply("s1", "u1", ["a", "b"], 1);
  ix.apply("s1", "u1", ["b", "c"], 2);
  expect(r.changes[1]).toEqual(["s1", "u1", ["c"], ["a"]]);
  expect(ix.memberCount("s1", "a")).toBe(0);
  ix.apply("s1", "u1", ["b", "c"], 3);
  expect(r.changes.length).toBe(2); // nothing changed, nothing reported
});

test("index - an older revision arriving late (the watch echo of a write applied already) changes nothing", () => {
  const r = recorder();
  const ix = new MembershipIndex(r.fn);
  ix.apply("s1", "u1", ["a"], 5);
  ix.apply("s1", "u1", [], 6);
  ix.apply("s1", "u1", ["a"], 5);
  expect(ix.groupsOf("s1", "u1")).toEqual([]);
  expect(ix.revisionOf("s1", "u1")).toBe(6);
});

test("memory store - add and remove are idempotent and say whether they changed anything", async () => {
  const r = recorder();
  const st = new MemoryMembershipStore({ maxGroupsPerUser: 0, maxGroupMembers: 0 }, r.fn);
  expect(await st.add("s1", "g", "u1")).toEqual({ ok: true, changed: true, groups: ["g"] });
  expect(await st.add("s1", "g", "u1")).toEqual({ ok: true, changed: false, groups: ["g"] });
  expect(await st.remove("s1", "g", "u1")).toEqual({ ok: true, changed: true, groups: [] });
  expect(await st.remove("s1", "g", "u1")).toEqual({ ok: true, changed: false, groups: [] });
  expect(r.changes).toEqual([
    ["s1", "u1", ["g"], []],
    ["s1", "u1", [], ["g"]],
  ]);
});

test("memory store - the groups-per-user cap refuses with 409 naming the setting", async () => {
  const st = new MemoryMembershipStore({ maxGroupsPerUser: 2, maxGroupMembers: 0 }, () => {});
  await st.add("s1", "a", "u1");
  await st.add("s1", "b", "u1");
  const r = await st.add("s1", "c", "u1");
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.status).toBe(409);
  expect(r.error).toContain("WSGATE_MAX_GROUPS_PER_USER=2");
  expect((await st.add("s2", "c", "u1")).ok).toBe(true); // per service
  expect((await st.add("s1", "a", "u1")).ok).toBe(true); // already a member: no change, no cap
});

test("memory store - the members-per-group cap refuses with 409 naming the setting", async () => {
  const st = new MemoryMembershipStore({ maxGroupsPerUser: 0, maxGroupMembers: 2 }, () => {});
  await st.add("s1", "g", "u1");
  await st.add("s1", "g", "u2");
  const r = await st.add("s1", "g", "u3");
  expect(r).toMatchObject({ ok: false, status: 409 });
  expect(!r.ok && r.error).toContain("WSGATE_MAX_GROUP_MEMBERS=2");
  await st.remove("s1", "g", "u1");
  expect((await st.add("s1", "g", "u3")).ok).toBe(true);
});
