// Shared pieces of the benchmarks, gathered for their imports: ports, nats-server and child
// processes (base.ts, over scripts/harness), the servers under test (servers.ts), the load
// client, publisher and subscriber (clients.ts), /proc readings (measure.ts), NATS helpers
// (nats-tools.ts), numbers and tables (format.ts).
// Every process started here is recorded and stopped by its own PID at the end (never by
// name); every wait is bounded.
export * from "./base.ts";
export * from "./clients.ts";
export * from "./format.ts";
export * from "./measure.ts";
export * from "./nats-tools.ts";
export * from "./servers.ts";
