// One collection after a burst of connections, once it is over (core/burst-gc.ts): idle
// memory after a burst depends on it (issue 16), and a collection per connection would cost
// the burst itself.
import { expect, test } from "bun:test";
import { BURST, BurstCollector } from "../../app/core/burst-gc.ts";

const until = async (what: string, ok: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
};

test("a burst of connections is followed by exactly one collection, after it stops", async () => {
  let collected = 0;
  const b = new BurstCollector(() => collected++, () => 0, 30);
  for (let i = 0; i < BURST * 3; i++) b.opened();
  expect(collected).toBe(0); // not during the burst
  await until("the collection", () => collected === 1);
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
    await Bun.sleep(5);
  }
  expect(collected).toBe(0);
  await until("the collection once quiet", () => collected === 1);
  b.stop();
});

test("fewer connections than a burst, or no runtime collector, collect nothing", async () => {
  let collected = 0;
  const b = new BurstCollector(() => collected++, () => 0, 10);
  for (let i = 0; i < BURST - 1; i++) b.opened();
  const none = new BurstCollector(undefined, () => 0, 10);
  for (let i = 0; i < BURST * 2; i++) none.opened();
  await Bun.sleep(100);
  expect(collected).toBe(0);
  b.stop();
});
