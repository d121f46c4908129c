// replay(): joining a user's stream backlog with the live messages held meanwhile, in order,
// nothing twice, against an in-memory stream.
import { expect, test } from "bun:test";
import { HOLD_MAX, replay } from "../../app/mailbox/replay.ts";
import { MemoryStream, RecordingTarget } from "../helpers/memory-stream.ts";

const never = () => false;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("replay - sends the stream's messages past the floor, then the held live ones, each once and in order", async () => {
  const s = new MemoryStream();
  s.add("a.u1"); // 1: already delivered (the floor)
  s.add("a.u2"); // 2: another user's
  s.add("a.u1"); // 3
  s.add("a.u1"); // 4: read from the stream and also held live
  s.add("a.u1"); // 5: still on its way to the stream, held live
  s.visibleTo = 4;
  const t = new RecordingTarget(1);
  t.hold(4, 3);
  t.hold(5, 4);
  const read = await replay(s.asStore(), "a.u1", t, never);
  expect(t.seqs).toEqual([3, 4, 5]);
  expect(t.texts).toEqual(["m3", "m4", "m5"]);
  expect(t.hints).toEqual(["text", "text", "text"]);
  expect(read).toBe(2);
  expect(t.held).toBeNull();
});

test("replay - a held message whose predecessor the live path skipped waits until the stream is read again", async () => {
  const s = new MemoryStream();
  for (let i = 0; i < 4; i++) s.add("a.u1");
  // The first read sees 1 and 2; 3 reaches the stream only afterwards, and the live path missed it.
  s.visibleTo = 2;
  s.onExhausted = () => void (s.visibleTo = Number.MAX_SAFE_INTEGER);
  const t = new RecordingTarget(0);
  t.hold(4, 3);
  const read = await replay(s.asStore(), "a.u1", t, never);
  expect(t.seqs).toEqual([1, 2, 3, 4]);
  expect(read).toBe(4);
  expect(t.held).toBeNull();
});

test("replay - a gap the stream no longer holds (dropped by its limits) is accepted and the held messages follow", async () => {
  const s = new MemoryStream();
  s.add("a.u1");
  s.add("a.u1");
  s.drop(s.add("a.u1")); // 3: gone from the stream for good
  s.add("a.u1"); // 4: held live, not yet readable
  s.visibleTo = 3;
  const t = new RecordingTarget(0);
  t.hold(4, 3);
  const read = await replay(s.asStore(), "a.u1", t, never);
  expect(t.seqs).toEqual([1, 2, 4]);
  expect(read).toBe(2);
  expect(t.held).toBeNull();
});

test(`replay - past ${HOLD_MAX} held messages they are dropped and read from the stream instead, in order, nothing twice`, async () => {
  const s = new MemoryStream();
  const total = 500 + HOLD_MAX;
  for (let i = 0; i < total; i++) s.add("a.u1");
  s.visibleTo = 500;
  s.onExhausted = () => void (s.visibleTo = Number.MAX_SAFE_INTEGER);
  const t = new RecordingTarget(0);
  for (let seq = 501; seq <= total; seq++) t.hold(seq, seq - 1, "live");
  const read = await replay(s.asStore(), "a.u1", t, never);
  expect(t.seqs).toEqual(range(1, total));
  // Every message came from the stream: the held copies were let go.
  expect(t.texts.every((x) => x.startsWith("m"))).toBe(true);
  expect(read).toBe(total);
  expect(t.held).toBeNull();
});

test("replay - one message short of the hold limit the held messages are sent from memory", async () => {
  const s = new MemoryStream();
  const total = HOLD_MAX - 1;
  for (let i = 0; i < total; i++) s.add("a.u1");
  s.visibleTo = 0;
  const t = new RecordingTarget(0);
  for (let seq = 1; seq <= total; seq++) t.hold(seq, seq - 1, "live");
  const read = await replay(s.asStore(), "a.u1", t, never);
  expect(t.seqs).toEqual(range(1, total));
  expect(t.texts.every((x) => x.startsWith("live"))).toBe(true);
  expect(read).toBe(0);
});

test("replay - held duplicates of what the stream already gave, and held messages older than the floor, are not sent again", async () => {
  const s = new MemoryStream();
  for (let i = 0; i < 3; i++) s.add("a.u1");
  const t = new RecordingTarget(1);
  t.hold(1, 0);
  t.hold(2, 1);
  t.hold(3, 2);
  t.hold(3, 2);
  await replay(s.asStore(), "a.u1", t, never);
  expect(t.seqs).toEqual([2, 3]);
});

test("replay - stops with -1 once the target is gone, sending nothing more", async () => {
  const s = new MemoryStream();
  for (let i = 0; i < 5; i++) s.add("a.u1");
  const t = new RecordingTarget(0);
  t.hold(6, 5);
  let gone = false;
  const orig = t.send.bind(t);
  t.send = (data, hint, seq) => {
    orig(data, hint, seq);
    if (seq === 2) gone = true;
  };
  const read = await replay(s.asStore(), "a.u1", t, () => gone);
  expect(read).toBe(-1);
  expect(t.seqs).toEqual([1, 2]);
});

test("replay - after a shared scan it reads only past the scanned sequence and joins the held messages", async () => {
  const s = new MemoryStream();
  for (let i = 0; i < 5; i++) s.add("a.u1");
  const t = new RecordingTarget(5); // the shared pass delivered 1..5
  s.add("a.u1"); // 6: the live path missed it
  s.add("a.u1"); // 7: held
  t.hold(7, 6);
  const read = await replay(s.asStore(), "a.u1", t, never, 5);
  expect(t.seqs).toEqual([6, 7]);
  expect(read).toBe(2);
});

test("replay - with the scan complete and nothing missed, it joins the held messages without reading the stream", async () => {
  const s = new MemoryStream();
  for (let i = 0; i < 5; i++) s.add("a.u1");
  const t = new RecordingTarget(5);
  t.hold(6, 5);
  const read = await replay(s.asStore(), "a.u1", t, never, 5);
  expect(t.seqs).toEqual([6]);
  expect(read).toBe(0);
  expect(s.calls.next).toBe(0);
});

test("replay - a stream read that fails rejects, for the caller to retry", async () => {
  const s = new MemoryStream();
  s.add("a.u1");
  s.failNext = { op: "next", error: new Error("timeout") };
  await expect(replay(s.asStore(), "a.u1", new RecordingTarget(0), never)).rejects.toThrow("timeout");
});
