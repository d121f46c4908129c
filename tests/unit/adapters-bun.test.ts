// The Bun adapter's runtime mapping, and the pieces every adapter shares.
import { describe, expect, test } from "bun:test";
import { bunTransport, type BunSocket } from "../../adapters/bun/transport.ts";
import { listenError } from "../../adapters/shared/listen-error.ts";
import { openFilesLimitFromEnv, openFilesLimitFromProc, softOpenFilesLimit } from "../../adapters/shared/open-files.ts";
import { ListenError } from "../../app/startup.ts";

function fakeSocket(result = 7) {
  const calls: string[] = [];
  const ws: BunSocket = {
    sendText: (d: string) => (calls.push(`text ${d}`), result),
    sendBinary: (d: Uint8Array) => (calls.push(`binary ${d.length}`), result),
    close: (code?: number, reason?: string) => void calls.push(`close ${code} ${reason}`),
    getBufferedAmount: () => 42,
    terminate: () => void calls.push("terminate"),
  } as unknown as BunSocket;
  return { ws, calls };
}

describe("bun transport", () => {
  test("text frames go out as text and binary as binary, with Bun's send result passed through", () => {
    const t = bunTransport(() => {});
    const { ws, calls } = fakeSocket(-1);
    expect(t.send(ws, "hi", true)).toBe(-1);
    expect(t.send(ws, new Uint8Array(3), false)).toBe(-1);
    expect(calls).toEqual(["text hi", "binary 3"]);
    expect(t.textAsString).toBe(true);
  });

  test("close, buffered amount, terminate and garbage collection reach Bun's calls", () => {
    let collected = 0;
    const t = bunTransport(() => collected++);
    const { ws, calls } = fakeSocket();
    t.close(ws, 1001, "node draining");
    t.terminate!(ws);
    t.collectGarbage!();
    expect(t.buffered!(ws)).toBe(42);
    expect(calls).toEqual(["close 1001 node draining", "terminate"]);
    expect(collected).toBe(1);
  });
});

describe("listen errors", () => {
  test("an error with an errno code reads as the code and the runtime's message", () => {
    expect(listenError(Object.assign(new Error("Failed to start server. Is port 8080 in use?"), { code: "EADDRINUSE" })).message).toBe(
      "EADDRINUSE (Failed to start server. Is port 8080 in use?)",
    );
    expect(listenError(Object.assign(new Error("EADDRNOTAVAIL: address not available, listen"), { code: "EADDRNOTAVAIL" })).message).toBe(
      "EADDRNOTAVAIL: address not available, listen",
    );
  });

  test("an error without a code keeps only its first line, and a ListenError stays as it is", () => {
    expect(listenError(new Error("failed to lookup address\n    at somewhere")).message).toBe("failed to lookup address");
    const own = new ListenError("mine");
    expect(listenError(own)).toBe(own);
  });
});

describe("open-files limit", () => {
  const limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                524288               files\n";

  test("the soft limit is read from /proc/self/limits, unlimited or unreadable is 0 (no cap)", () => {
    expect(softOpenFilesLimit(limits)).toBe(20000);
    expect(softOpenFilesLimit("Max open files            unlimited            unlimited            files")).toBe(0);
    const warned: string[] = [];
    expect(
      openFilesLimitFromProc(() => {
        throw new Error("EACCES");
      }, (e) => warned.push(e)),
    ).toBe(0);
    expect(warned).toEqual(["Error: EACCES"]);
  });

  test("the value handed over by scripts/start.sh is used only when it is a positive integer", () => {
    expect(openFilesLimitFromEnv("65536")).toBe(65536);
    for (const bad of [undefined, "", "unlimited", "-1", "1.5"]) expect(openFilesLimitFromEnv(bad)).toBe(0);
  });
});

describe("entry files", () => {
  test("the Bun and Node entry files import without running: they export start() for the caller", async () => {
    const bun = await import("../../adapters/bun.ts");
    const node = await import("../../adapters/node-uws.ts");
    expect(typeof bun.start).toBe("function");
    expect(typeof node.start).toBe("function");
  });
});
