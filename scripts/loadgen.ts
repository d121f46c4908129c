#!/usr/bin/env bun
// WebSocket load client for wsgate (or any WebSocket server on loopback).
//
// Built so that the client is never the bottleneck: raw TCP through Bun.connect, a
// hand-written client handshake and frame codec, no WebSocket objects, no per-message
// allocation beyond what the socket hands us. N connections are spread over W worker
// processes (each below the 20k open-files limit), and every worker binds its own source
// addresses 127.A.B.2, 127.A.B.3, ... (`--per-addr` connections each), so neither the
// descriptor limit nor the ephemeral port range stops it.
//
// Source binding: Bun.connect takes an undeclared `localAddress` option (Bun 1.4; not in
// bun-types). Measured against node:net `net.connect({localAddress})` under Bun, 10k
// connections: Bun.connect ~1.45 KB RSS and ~50 µs CPU per connection, node:net ~3.9 KB
// and ~80 µs, so Bun.connect is used. `--src auto` picks a fresh 127.A.B.0/24 per run:
// bind() to a source address still holding earlier runs' TIME_WAIT sockets was 5-40x
// slower.
//
// Modes
//   idle   open N connections and hold them for --duration seconds
//   recv   like idle, and count received messages; if a message starts with a wall-clock
//          time in ms (Date.now() or performance.timeOrigin + performance.now(), as text,
//          optionally with a fraction), its latency is recorded
//   send   each connection sends --rate messages/s of --size bytes (timestamp first); with
//          --window N and --feedback-url, closed loop instead: at most N messages in flight,
//          counted against a Prometheus counter at that URL (--feedback-metric: the server's
//          messages-in counter, or a downstream subscriber's), so clients send exactly as fast
//          as the other end takes them and nothing piles up in socket buffers
//   storm  open, hold --hold s, drop every connection (--drop close|abort) and reconnect
//          each after a uniform random delay in [0, --jitter] ms; --rounds times; reports
//          the time until all are back
//
// --count-to N (any mode): per connection, the time from the start of its connect (the
// first attempt, retries included; in storm mode the reconnect) to its N-th received
// message, as a histogram, plus when the first connection started and the last one got
// there, so "every backlog delivered after X ms" can be read off one run (a mailbox
// catch-up). --until-counted ends the run as soon as every connection that opened got N.
//
// Output: progress on stderr every second; at the end one JSON line on stdout and a
// human table on stderr. With `--control stdin`, lines "phase <name>" split the counters
// into named phases and "stop" ends the run. SIGINT/SIGTERM end the run with a summary.
// Every loop is bounded; --max-seconds is a hard stop; only loopback targets are accepted.
//
//   bun scripts/loadgen.ts --url ws://127.0.0.1:8080/ws -n 10000 --mode recv -d 30
//
// The parts, in scripts/loadgen/: options.ts (the command line), coordinator.ts and pool.ts
// (the parent and its workers), worker.ts, reader.ts, send.ts, storm.ts (a worker's
// connections, frames in, send mode, storm rounds), codec.ts (the WebSocket client framing),
// histogram.ts, recorder.ts and report.ts (counting and the summary), messages.ts (IPC).
// Workers are this same script run with --worker.
import { runParent } from "./loadgen/coordinator.ts";
import { runWorker } from "./loadgen/worker.ts";

if (Bun.argv.includes("--worker")) runWorker();
else await runParent();
