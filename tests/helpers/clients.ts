// Real WebSocket clients the tests drive: Bun's own WebSocket and the `ws` package.
import WS from "ws";
import { waitFor } from "./procs.ts";

export type Received = { data: string | Uint8Array; binary: boolean };

export type Client = {
  received: Received[];
  closed: Promise<{ code: number; reason: string }>;
  /** an ArrayBuffer-backed view: Bun's WebSocket.send takes no SharedArrayBuffer */
  send(data: string | Uint8Array<ArrayBuffer>): void;
  close(): void;
  /** waits until at least n messages arrived and returns them */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
};

export function cookie(svc: string, user: string) {
  return `service=${svc}; user=${user}`;
}

/** Bun's WebSocket client; resolves once open, rejects if the upgrade is refused. */
export function bunClient(url: string, headers: Record<string, string>): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers } as unknown as string[]);
    ws.binaryType = "arraybuffer";
    const received: Received[] = [];
    let opened = false;
    let onClose!: (v: { code: number; reason: string }) => void;
    const closed = new Promise<{ code: number; reason: string }>((r) => (onClose = r));
    ws.onmessage = (e) =>
      received.push(typeof e.data === "string" ? { data: e.data, binary: false } : { data: new Uint8Array(e.data as ArrayBuffer), binary: true });
    ws.onclose = (e) => {
      onClose({ code: e.code, reason: e.reason });
      if (!opened) reject(new Error(`not upgraded (close ${e.code})`));
    };
    ws.onopen = () => {
      opened = true;
      resolve({
        received,
        closed,
        send: (d) => ws.send(d),
        close: () => ws.close(),
        waitFor: (n, t = 5_000) => waitFor(`${n} messages (have ${received.length})`, () => (received.length >= n ? received : undefined), t),
      });
    };
  });
}

/** The `ws` package's client, which also reports the HTTP status of a refused upgrade. */
export function wsPackageClient(url: string, headers: Record<string, string>, protocol?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = protocol ? new WS(url, protocol, { headers }) : new WS(url, { headers });
    const received: Received[] = [];
    let onClose!: (v: { code: number; reason: string }) => void;
    const closed = new Promise<{ code: number; reason: string }>((r) => (onClose = r));
    ws.on("message", (data, isBinary) => {
      const bytes = new Uint8Array(data as Buffer);
      received.push(isBinary ? { data: bytes, binary: true } : { data: new TextDecoder().decode(bytes), binary: false });
    });
    ws.on("close", (code, reason) => onClose({ code, reason: reason.toString() }));
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c));
      res.on("end", () => reject(Object.assign(new Error(`refused ${res.statusCode}: ${body.trim()}`), { status: res.statusCode, body })));
    });
    ws.on("error", (err) => reject(err));
    ws.on("open", () =>
      resolve({
        received,
        closed,
        send: (d) => ws.send(d, { binary: typeof d !== "string" }),
        close: () => ws.close(),
        waitFor: (n, t = 5_000) => waitFor(`${n} messages (have ${received.length})`, () => (received.length >= n ? received : undefined), t),
      }),
    );
  });
}

/** Sends raw bytes to the gateway and returns what came back until it closed or went quiet. */
export async function rawExchange(port: number, request: string | Uint8Array, quietMs = 300): Promise<string> {
  let got = "";
  let last = Date.now();
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        got += new TextDecoder().decode(d);
        last = Date.now();
      },
      close() {
        done();
      },
      error() {
        done();
      },
    },
  });
  sock.write(request);
  const end = Date.now() + 5_000;
  while (Date.now() < end) {
    const r = await Promise.race([finished.then(() => true), Bun.sleep(50).then(() => false)]);
    if (r || (got && Date.now() - last > quietMs) || responseComplete(got)) break;
  }
  sock.end();
  return got;
}

/** A response with Content-Length whose body has fully arrived. */
function responseComplete(raw: string): boolean {
  const head = raw.indexOf("\r\n\r\n");
  if (head < 0) return false;
  const len = /\r\ncontent-length: *(\d+)/i.exec(raw.slice(0, head))?.[1];
  return len !== undefined && new TextEncoder().encode(raw.slice(head + 4)).length >= Number(len);
}

/** The raw upgrade request a WebSocket client sends. */
export function upgradeRequest(headers: Record<string, string>, path = "/ws"): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return lines.join("\r\n") + "\r\n\r\n";
}

/** Sends an upgrade request over raw TCP and returns the HTTP status and body (for refusals). */
export async function tryUpgrade(httpUrl: string, headers: Record<string, string>, path = "/ws"): Promise<{ status: number; body: string }> {
  const port = Number(new URL(httpUrl).port);
  const raw = await rawExchange(port, upgradeRequest(headers, path));
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
  const bodyAt = raw.indexOf("\r\n\r\n");
  return { status, body: bodyAt >= 0 ? raw.slice(bodyAt + 4) : "" };
}

/**
 * A raw-mode reader that can stop reading (TCP flow control pushes back on the gateway)
 * and start again: for pacing and slow-consumer tests. Parses the server's frames itself.
 */
export async function pausableReader(port: number, headers: Record<string, string>) {
  const net = await import("node:net");
  const sock = net.connect({ host: "127.0.0.1", port });
  const texts: string[] = [];
  let closeCode = 0;
  let buf = Buffer.alloc(0);
  let upgraded = false;
  sock.on("data", (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (!buf.subarray(0, 12).toString().includes("101")) throw new Error(`not upgraded: ${buf.subarray(0, end)}`);
      upgraded = true;
      buf = buf.subarray(end + 4);
    }
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) return;
      const payload = buf.subarray(at, at + len);
      if (op === 1) texts.push(payload.toString("utf8"));
      else if (op === 8) closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      buf = buf.subarray(at + len);
    }
  });
  sock.write(upgradeRequest(headers));
  await waitFor("upgraded", () => upgraded);
  return {
    texts,
    closeCode: () => closeCode,
    pause: () => sock.pause(),
    resume: () => sock.resume(),
    close: () => sock.destroy(),
  };
}
