// The wsgate.v1 client frame schemas and the frames the gateway builds.
import { expect, test } from "bun:test";
import { frameBytes, idFrame, parseClientFrame } from "../../app/envelope/frames.ts";

test("accepts each client frame type, with defaults for the optional fields", () => {
  expect(parseClientFrame('{"type":"message","data":"hi"}')).toEqual({ type: "message", data: "hi" });
  expect(parseClientFrame('{"type":"message"}')).toEqual({ type: "message", data: "" });
  expect(parseClientFrame('{"type":"request","id":"c1","method":"get_time","data":"x","timeout":500}')).toEqual({
    type: "request",
    id: "c1",
    method: "get_time",
    data: "x",
    timeout: 500,
  });
  expect(parseClientFrame('{"type":"reply","id":"7","data":"AAE=","encoding":"base64"}')).toEqual({ type: "reply", id: "7", data: "AAE=", encoding: "base64" });
  expect(parseClientFrame('{"type":"error","id":"7"}')).toEqual({ type: "error", id: "7", code: "client_error", message: "" });
  expect(parseClientFrame('{"type":"resume","after":42}')).toEqual({ type: "resume", after: 42 });
  expect(parseClientFrame('{"type":"resume"}')).toEqual({ type: "resume" });
});

test("refuses what is not a valid frame, naming the id only when it is a valid one", () => {
  const cases: [string, string, string | undefined][] = [
    ["{", "not JSON", undefined],
    ['"message"', "JSON object", undefined],
    ['{"type":"ping","id":"a"}', "type must be one of", "a"],
    ['{"type":"request","id":"a","method":"x.y"}', "method must match", "a"],
    ['{"type":"request","id":"a","method":"*"}', "method must match", "a"],
    [`{"type":"request","id":"a"}`, "method is required", "a"],
    ['{"type":"reply","id":"a b"}', "id must be", undefined],
    ['{"type":"reply","id":""}', "id must be", undefined],
    [`{"type":"reply","id":"${"x".repeat(65)}"}`, "id must be", undefined],
    ['{"type":"reply","id":"\\u0001"}', "id must be", undefined],
    ['{"type":"reply","id":"a","encoding":"hex"}', "encoding must be", "a"],
    ['{"type":"resume","after":1.5}', "after must be a whole number", undefined],
    ['{"type":"resume","after":"3"}', "after must be a number", undefined],
    [`{"type":"error","id":"a","message":"${"m".repeat(1025)}"}`, "at most 1024", "a"],
  ];
  for (const [text, why, id] of cases) {
    const r = parseClientFrame(text) as { bad: string; id?: string };
    expect({ text, bad: r.bad.includes(why), id: r.id }).toEqual({ text, bad: true, id });
  }
});

test("base64 data decodes to bytes; text stays UTF-8; bad base64 is caught", () => {
  expect([...frameBytes({ data: "AP8B", encoding: "base64" })!]).toEqual([0, 255, 1]);
  expect(new TextDecoder().decode(frameBytes({ data: "héllo" })!)).toBe("héllo");
  expect(frameBytes({ data: "@@@", encoding: "base64" })).toBeNull();
});

test("request and reply frames carry the id JSON-escaped and binary data as base64", () => {
  expect(JSON.parse(idFrame("request", 'a"\\b', new TextEncoder().encode("✓"), true))).toEqual({ type: "request", id: 'a"\\b', data: "✓" });
  expect(JSON.parse(idFrame("reply", "1", new Uint8Array([0, 255]), false))).toEqual({ type: "reply", id: "1", data: "AP8=", encoding: "base64" });
});
