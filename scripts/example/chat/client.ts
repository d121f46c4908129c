// A chat user on the SDK: joins a room, prints what the room says, optionally says something.
// Run: bun scripts/example/chat/client.ts --url ws://127.0.0.1:8080/ws --user alice [--room lobby]
//        [--say "hi"] [--until "bob: hi"]   (--until: exit 0 once a line containing it is printed)
import { connect } from "wsgate/client";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    url: { type: "string", default: "ws://127.0.0.1:8080/ws" },
    user: { type: "string", default: "alice" },
    room: { type: "string", default: "lobby" },
    say: { type: "string" },
    until: { type: "string" },
    timeout: { type: "string", default: "30000" },
  },
});

const client = connect(args.url, {
  // Development mode: identity from cookies (a header, which Bun's WebSocket allows).
  createWebSocket: (url, protocols) => new WebSocket(url, { protocols, headers: { Cookie: `service=chat; user=${args.user}` } } as unknown as string[]),
});

const print = (line: string) => {
  console.log(line);
  if (args.until && line.includes(args.until)) {
    client.close();
    process.exit(0);
  }
};

client.onMessage((data, info) => {
  const m = JSON.parse(String(data));
  if (info.group) return print(`[${info.group}] ${m.from}: ${m.text}`);
  if (info.broadcast) return print(`[everyone] ${m.text ?? String(data)}`);
  if (m.joined) {
    print(`joined ${m.joined}`);
    if (args.say) client.send(JSON.stringify({ room: args.room, text: args.say }));
  } else if (m.error) print(`error: ${m.error}`);
});

client.send(JSON.stringify({ join: args.room }));
setTimeout(() => {
  console.error(`chat client ${args.user}: gave up after ${args.timeout} ms`);
  process.exit(1);
}, Number(args.timeout));
