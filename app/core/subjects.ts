// The subject names are the public contract services rely on; build them in one place.
// Every name put in a subject token is checked first by the id rule in protocol/ids.ts.

export type Subjects = {
  /** client → services */
  send(svc: string, user: string): string;
  /** services → client */
  recv(svc: string, user: string): string;
  /** services → client, as republished by the mailbox stream with its sequence headers */
  live(svc: string, user: string): string;
  /** where the mailbox keeps how far delivery to a user got */
  cursor(svc: string, user: string): string;
  /** services → client requests (wsgate.v1): watched only while the user has an envelope connection */
  req(svc: string, user: string): string;
  /** client → service calls (wsgate.v1) */
  call(svc: string, method: string): string;
  /** what a mailbox stream captures while it is being created: inside recv (its republish source) but no user's (`$` is not a valid id) */
  mailboxStarting(stream: string): string;
  /** every subject the mailbox stream captures */
  recvAll: string;
  liveAll: string;
  cursorAll: string;
};

export function subjects(prefix: string): Subjects {
  const send = `${prefix}.send.`;
  const recv = `${prefix}.recv.`;
  const live = `${prefix}.live.`;
  const cursor = `${prefix}.cursor.`;
  return {
    send: (svc, user) => send + svc + "." + user,
    recv: (svc, user) => recv + svc + "." + user,
    live: (svc, user) => live + svc + "." + user,
    cursor: (svc, user) => cursor + svc + "." + user,
    req: (svc, user) => `${prefix}.req.${svc}.${user}`,
    call: (svc, method) => `${prefix}.call.${svc}.${method}`,
    mailboxStarting: (stream) => `${recv}$starting.${stream}`,
    recvAll: recv + ">",
    liveAll: live + ">",
    cursorAll: cursor + ">",
  };
}
