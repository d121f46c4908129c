// process_open_fds and the accept guard count descriptors with one stat call (fd-count.ts):
// the count must follow what the process really holds, as a listing of /proc/self/fd does.
import { expect, test } from "bun:test";
import { closeSync, openSync, readdirSync } from "node:fs";
import { openFdCount } from "../../adapters/shared/fd-count.ts";

test("openFdCount follows every descriptor opened and closed, the same count a listing gives", () => {
  const before = openFdCount();
  const fds = Array.from({ length: 200 }, () => openSync("/dev/null", "r"));
  try {
    expect(openFdCount()).toBe(before + 200);
    expect(openFdCount()).toBe(readdirSync("/proc/self/fd").length - 1);
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  expect(openFdCount()).toBe(before);
});
