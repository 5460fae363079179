// An autobahn.js client of examples/wamp/app.py, on Node: `node examples/wamp/client.js [URL]`
// (after `npm install --prefix examples/wamp`). The same calls work in a browser with npm's
// autobahn-browser. It calls com.example.add, subscribes to com.example.notice, publishes to it
// (asking for its own event back) and leaves once the event arrives; exits 1 on any failure.
const autobahn = require("autobahn");

const url = process.argv[2] || "ws://127.0.0.1:8000/ws";
const connection = new autobahn.Connection({url, realm: "realm1", max_retries: 0});

connection.onopen = async (session) => {
  try {
    console.log("com.example.add(2, 3) =", await session.call("com.example.add", [2, 3]));
    let deliver;
    const event = new Promise((resolve) => { deliver = resolve; });
    await session.subscribe("com.example.notice", ([text]) => deliver(text));
    await session.publish("com.example.notice", ["hello from autobahn.js"], {},
                          {acknowledge: true, exclude_me: false});
    console.log("event:", await event);
    connection.close();
  } catch (error) {
    console.error("failed:", error);
    process.exit(1);
  }
};
connection.onclose = (reason, details) => {
  if (reason !== "closed") {
    console.error("connection", reason, details.reason || "");
    process.exit(1);
  }
};
connection.open();
