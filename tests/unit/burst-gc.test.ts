// One collection after a burst of connections, once it is over (core/burst-gc.ts): idle
// memory after a burst depends on it (issue 16), and a collection per connection would cost
// the burst itself.
import { expect, test } from "bun:test";
import { BURST, BurstCollector } from "../../app/core/burst-gc.ts";
import { waitFor } from "../helpers/procs.ts";

test("a burst of connections is followed by exactly one collection, after it stops", async () => {
  let collected = 0;
  const b = new BurstCollector(() => collected++, () => 0, 30);
  for (let i = 0; i < BURST * 3; i++) b.opened();
  expect(collected).toBe(0); // not during the burst
  await waitFor("the collection", () => collected === 1, 10_000, 5);
  // Another collection would need another quiet check, a timer of 30 ms set at the latest by
  // this one: timers fire in deadline order, so it would have run before this longer one.
  await Bun.sleep(100);
  expect(collected).toBe(1);
  b.stop();
});

test("a burst still going at the quiet check waits for the next quiet period", async () => {
  let collected = 0;
  const b = new BurstCollector(() => collected++, () => 0, 40);
  for (let i = 0; i < BURST; i++) b.opened();
  const end = Date.now() + 150;
  while (Date.now() < end) {
    b.opened();
    await Bun.sleep(5); // connections still arriving, one every 5 ms: never 40 ms of quiet
  }
  expect(collected).toBe(0);
  await waitFor("the collection once quiet", () => collected === 1, 10_000, 5);
  b.stop();
});

test("fewer connections than a burst, or no runtime collector, collect nothing", async () => {
  let collected = 0;
  const b = new BurstCollector(() => collected++, () => 0, 10);
  for (let i = 0; i < BURST - 1; i++) b.opened();
  const none = new BurstCollector(undefined, () => 0, 10);
  for (let i = 0; i < BURST * 2; i++) none.opened();
  // A collection would follow a quiet check, a timer of 10 ms set by opened(): timers fire in
  // deadline order, so it would have run before this longer one.
  await Bun.sleep(100);
  expect(collected).toBe(0);
  b.stop();
});
