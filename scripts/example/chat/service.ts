// The chat service of the groups example: it never touches a socket. Users' frames arrive on
// ws.send.chat.<user>; rooms are gateway groups, so one publish reaches every member on every node.
//   {"join":"lobby"}               → ws.groups.add.chat.lobby.<user> (membership kept by the gateways),
//                                    then {"joined":"lobby"} to the user and a notice to the room
//   {"room":"lobby","text":"hi"}   → {"from":"<user>","text":"hi"} on ws.group.chat.lobby (members only)
// Run: bun scripts/example/chat/service.ts [--nats nats://127.0.0.1:4222]
import { connect, type Msg } from "@nats-io/transport-node";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({ options: { nats: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" } } });
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const nc = await connect({ servers: args.nats, name: "chat service" });
const json = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

async function ask(subject: string): Promise<{ status: number; groups?: string[]; error?: string }> {
  return (await nc.request(subject, new Uint8Array(), { timeout: 5_000 })).json();
}

nc.subscribe("ws.send.chat.*", { callback: (_err, m) => void onFrame(m) });

async function onFrame(m: Msg) {
  const user = m.subject.split(".")[3];
  let frame: { join?: unknown; room?: unknown; text?: unknown };
  try {
    frame = m.json();
  } catch {
    return;
  }
  try {
    if (typeof frame.join === "string" && ID.test(frame.join)) {
      const r = await ask(`ws.groups.add.chat.${frame.join}.${user}`);
      if (r.status !== 200) return nc.publish(`ws.recv.chat.${user}`, json({ error: r.error }));
      nc.publish(`ws.recv.chat.${user}`, json({ joined: frame.join }));
      nc.publish(`ws.group.chat.${frame.join}`, json({ from: "*", text: `${user} joined` }));
    } else if (typeof frame.room === "string" && ID.test(frame.room) && typeof frame.text === "string") {
      // Only members speak in a room: the gateways answer from their membership index.
      const r = await ask(`ws.groups.user.chat.${user}`);
      if (!r.groups?.includes(frame.room)) return nc.publish(`ws.recv.chat.${user}`, json({ error: `not in ${frame.room}` }));
      nc.publish(`ws.group.chat.${frame.room}`, json({ from: user, text: frame.text.slice(0, 1000) }));
    }
  } catch (err) {
    console.error(`chat service: ${String(err)}`);
  }
}
await nc.flush();
console.log(`chat service: ready on ${args.nats}`);
