// Start-up and shutdown as an operator sees them, on every runtime: a listen failure is
// one line and an exit status, and a drain stays visible to the load balancer.
import { describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:net";
import { cookie, pausableReader, tryUpgrade } from "./helpers/clients.ts";
import { freePort, RUNTIMES, startGateway, waitFor } from "./helpers/procs.ts";

/** What the process printed that is not a JSON log line: the operator-facing error. */
function plainLines(output: string): string[] {
  return output.split("\n").filter((l) => l.trim() && !l.startsWith("{"));
}

function hold(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port }, () => resolve(srv));
  });
}

for (const runtime of RUNTIMES) {
  describe(`${runtime}: start and stop`, () => {
    test("a port already in use exits 1 with one line naming HOST, PORT and EADDRINUSE", async () => {
      const port = await freePort();
      const holder = await hold(port);
      try {
        const gw = await startGateway(runtime, { port, waitListening: false });
        expect(await gw.proc.exited).toBe(1);
        const lines = plainLines(gw.output());
        expect(lines).toEqual([expect.stringContaining(`HOST=127.0.0.1 PORT=${port}`)]);
        expect(lines[0]).toContain("EADDRINUSE");
      } finally {
        holder.close();
      }
    });

    test("a HOST that is not a local address exits 1 with one line naming it and EADDRNOTAVAIL", async () => {
      // Only bound, never sent to: 203.0.113.0/24 is TEST-NET-3, on no interface here.
      const gw = await startGateway(runtime, { env: { HOST: "203.0.113.1" }, waitListening: false });
      expect(await gw.proc.exited).toBe(1);
      const lines = plainLines(gw.output());
      expect(lines).toEqual([expect.stringContaining("HOST=203.0.113.1 PORT=")]);
      expect(lines[0]).toContain("EADDRNOTAVAIL");
    });

    test("during a SIGTERM drain /readyz and upgrades get 503 (never a refused connection) with a client that never answers the close, then it exits 0", async () => {
      const gw = await startGateway(runtime);
      try {
        const stuck = await pausableReader(gw.port, { Cookie: cookie("drain", "u1") });
        stuck.pause(); // reads nothing more, so it never answers the 1001 close
        await waitFor("the client counted", async () => (await gw.metric("wsgate_connections")) === 1);
        gw.proc.kill("SIGTERM");
        // Every answer until the first 503 must be a 200 (the signal not handled yet), never a refused connection.
        let readyz = 0;
        for (const end = Date.now() + 10_000; readyz !== 503 && Date.now() < end; ) {
          readyz = (await gw.fetch("/readyz")).status;
          if (readyz !== 503) expect(readyz).toBe(200);
        }
        expect(readyz).toBe(503);
        const up = await tryUpgrade(gw.http, { Cookie: cookie("drain", "u2") });
        expect(up.status).toBe(503);
        expect(up.body).toContain("draining");
        expect(await gw.proc.exited).toBe(0);
        stuck.close();
      } finally {
        await gw.stop("SIGKILL");
      }
    });
  });
}
