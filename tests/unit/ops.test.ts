import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Metrics } from "../../app/ops/metrics.ts";
import { VERSION } from "../../app/ops/version.ts";

test("the version the binary reports is package.json's", () => {
  expect(VERSION).toBe(JSON.parse(readFileSync(join(import.meta.dir, "..", "..", "package.json"), "utf8")).version);
});

test("process series appear only when the adapter reads them; open fds only when it can", () => {
  const m = new Metrics();
  expect(m.render("n1", "bun")).not.toContain("process_");
  const text = m.render("n1", "deno", { residentBytes: 5e7, cpuSeconds: 1.5, openFds: -1, startTimeSeconds: 1.8e9 });
  expect(text).toContain("process_resident_memory_bytes 50000000\n");
  expect(text).toContain("process_cpu_seconds_total 1.5\n");
  expect(text).not.toContain("process_open_fds");
  expect(text).toContain(`wsgate_build_info{version="${VERSION}",runtime="deno"} 1\n`);
});
