const ws = new WebSocket("ws://127.0.0.1:18150/ws");
ws.onopen = () => { ws.send("yo"); };
ws.onmessage = (e) => { console.log("client got", e.data); setTimeout(() => ws.close(4000, "bye"), 50); };
ws.onclose = (e) => console.log("client close", e.code);
await new Promise(r => setTimeout(r, 400));
console.log(await (await fetch("http://127.0.0.1:18150/ws")).text());
console.log(await (await fetch("http://127.0.0.1:18150/x/y?a=1")).text());
