// Long-lived per-connection objects made a batch at a time (app/util/batched.ts).
import { expect, test } from "bun:test";
import { BATCH, Batched } from "../../app/util/batched.ts";

test("batched - each object is handed out once, and a batch is made only when the last one is gone", () => {
  let made = 0;
  const b = new Batched(() => ({ n: made++ }));
  const first = b.take();
  expect(made).toBe(BATCH);
  const seen = new Set([first]);
  for (let i = 1; i < BATCH; i++) seen.add(b.take());
  expect(seen.size).toBe(BATCH);
  expect(made).toBe(BATCH);
  expect(seen.has(b.take())).toBe(false);
  expect(made).toBe(2 * BATCH);
});
