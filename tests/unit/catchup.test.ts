// CatchupReader: per-user reads for a lone reconnect, one shared ordered pass when many
// wait at once, against an in-memory stream.
import { expect, test } from "bun:test";
import { CatchupReader, PASS_MIN, type PassStats } from "../../app/mailbox/catchup.ts";
import { Limiter } from "../../app/mailbox/store.ts";
import { MemoryStream, RecordingTarget } from "../helpers/memory-stream.ts";

const never = () => false;

function setup(limit = 4) {
  const stream = new MemoryStream();
  const passes: PassStats[] = [];
  const reader = new CatchupReader(stream.asStore(), new Limiter(limit), (p) => passes.push(p));
  return { stream, passes, reader };
}

/** `users` users with `each` messages apiece, interleaved as they arrive; returns each user's sequences. */
function fill(stream: MemoryStream, users: number, each: number) {
  const seqs = new Map<string, number[]>();
  for (let i = 0; i < each; i++) {
    for (let u = 0; u < users; u++) {
      const name = `a.u${u}`;
      const seq = stream.add(name);
      seqs.set(name, [...(seqs.get(name) ?? []), seq]);
    }
  }
  return seqs;
}

test("catch-up - a lone reconnect reads its user's messages by subject, without a shared pass", async () => {
  const { stream, passes, reader } = setup();
  const seqs = fill(stream, 3, 4);
  const t = new RecordingTarget(0);
  expect(await reader.read("a.u1", t, never)).toBe(4);
  expect(t.seqs).toEqual(seqs.get("a.u1")!);
  expect(stream.calls.scan).toBe(0);
  expect(passes).toEqual([]);
  expect(reader.idle()).toBe(true);
});

test(`catch-up - ${PASS_MIN * 2} reads waiting at once share one ordered pass and each user gets only its own messages, in order`, async () => {
  const { stream, passes, reader } = setup();
  const users = PASS_MIN * 2;
  const seqs = fill(stream, users, 5);
  const targets = Array.from({ length: users }, () => new RecordingTarget(0));
  const counts = await Promise.all(targets.map((t, u) => reader.read(`a.u${u}`, t, never)));
  expect(counts).toEqual(targets.map(() => 5));
  targets.forEach((t, u) => expect(t.seqs).toEqual(seqs.get(`a.u${u}`)!));
  expect(stream.calls.scan).toBe(1);
  expect(passes.length).toBe(1);
  expect(passes[0].users).toBe(users);
  expect(passes[0].read).toBe(users * 5);
  expect(reader.idle()).toBe(true);
});

test("catch-up - live messages held during a shared pass are joined after it, nothing twice", async () => {
  const { stream, reader } = setup();
  const users = PASS_MIN;
  const seqs = fill(stream, users, 2);
  const targets = Array.from({ length: users }, () => new RecordingTarget(0));
  // u0's last stored message also came live, and a newer one is held that the stream has not shown yet.
  const last = seqs.get("a.u0")!.at(-1)!;
  targets[0].hold(last, seqs.get("a.u0")![0]);
  const newer = stream.add("a.u0");
  stream.visibleTo = newer - 1;
  targets[0].hold(newer, last);
  await Promise.all(targets.map((t, u) => reader.read(`a.u${u}`, t, never)));
  expect(targets[0].seqs).toEqual([...seqs.get("a.u0")!, newer]);
  expect(targets[0].held).toBeNull();
});

test("catch-up - a user whose sockets are backed up leaves the pass and catches up on its own, missing nothing", async () => {
  const { stream, reader } = setup();
  const users = PASS_MIN + 2;
  const seqs = fill(stream, users, 6);
  const targets = Array.from({ length: users }, () => new RecordingTarget(0));
  targets[3].backed = true;
  const counts = await Promise.all(targets.map((t, u) => reader.read(`a.u${u}`, t, never)));
  targets.forEach((t, u) => expect(t.seqs).toEqual(seqs.get(`a.u${u}`)!));
  expect(counts[3]).toBe(6);
  expect(stream.calls.next).toBeGreaterThan(0);
});

test("catch-up - a user far behind the rest reads on its own while the others share the pass", async () => {
  const { stream, passes, reader } = setup();
  const far = stream.add("a.far");
  stream.skip(100_000); // other traffic the stream no longer holds for these users
  const base = stream.add("a.other");
  const seqs = fill(stream, PASS_MIN, 3);
  const targets = Array.from({ length: PASS_MIN }, () => new RecordingTarget(base));
  const behind = new RecordingTarget(0);
  const reads = [...targets.map((t, u) => reader.read(`a.u${u}`, t, never)), reader.read("a.far", behind, never)];
  await Promise.all(reads);
  expect(behind.seqs).toEqual([far]);
  targets.forEach((t, u) => expect(t.seqs).toEqual(seqs.get(`a.u${u}`)!));
  expect(passes.length).toBe(1);
  expect(passes[0].users).toBe(PASS_MIN);
});

test("catch-up - reads of users who already left resolve with -1 and send nothing", async () => {
  const { stream, reader } = setup();
  fill(stream, PASS_MIN + 1, 2);
  const targets = Array.from({ length: PASS_MIN + 1 }, () => new RecordingTarget(0));
  const counts = await Promise.all(targets.map((t, u) => reader.read(`a.u${u}`, t, () => u === 0)));
  expect(counts[0]).toBe(-1);
  expect(targets[0].seqs).toEqual([]);
  expect(counts.slice(1).every((n) => n === 2)).toBe(true);

  const lone = new RecordingTarget(0);
  expect(await reader.read("a.u1", lone, () => true)).toBe(-1);
  expect(lone.seqs).toEqual([]);
});

test("catch-up - a stream that cannot be read rejects every waiting read, for the callers to retry", async () => {
  const { stream, reader } = setup();
  fill(stream, PASS_MIN, 2);
  stream.failNext = { op: "bounds", error: new Error("stream info timed out") };
  const results = await Promise.allSettled(
    Array.from({ length: PASS_MIN }, (_, u) => reader.read(`a.u${u}`, new RecordingTarget(0), never)),
  );
  expect(results.every((r) => r.status === "rejected" && String(r.reason).includes("stream info timed out"))).toBe(true);

  stream.failNext = { op: "scan", error: new Error("consumer gone") };
  const again = await Promise.allSettled(
    Array.from({ length: PASS_MIN }, (_, u) => reader.read(`a.u${u}`, new RecordingTarget(0), never)),
  );
  expect(again.every((r) => r.status === "rejected" && String(r.reason).includes("consumer gone"))).toBe(true);
  expect(reader.idle()).toBe(true);
});

test("catch-up - reads arriving while a pass runs are served after it", async () => {
  const { stream, passes, reader } = setup();
  const seqs = fill(stream, PASS_MIN * 2, 2);
  const first = Array.from({ length: PASS_MIN }, () => new RecordingTarget(0));
  // The first pass's scan is held open until the second wave has arrived.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let scanning!: () => void;
  const started = new Promise<void>((r) => (scanning = r));
  const scan = stream.scan.bind(stream);
  stream.scan = async (...args) => {
    scanning();
    await held;
    return scan(...args);
  };
  const firstReads = first.map((t, u) => reader.read(`a.u${u}`, t, never));
  await started;
  const second = Array.from({ length: PASS_MIN }, () => new RecordingTarget(0));
  const secondReads = second.map((t, u) => reader.read(`a.u${PASS_MIN + u}`, t, never));
  release();
  await Promise.all([...firstReads, ...secondReads]);
  first.forEach((t, u) => expect(t.seqs).toEqual(seqs.get(`a.u${u}`)!));
  second.forEach((t, u) => expect(t.seqs).toEqual(seqs.get(`a.u${PASS_MIN + u}`)!));
  expect(passes.length).toBe(2);
});
