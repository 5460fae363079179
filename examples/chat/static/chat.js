// The chat page: join a room over a WebSocket, show its messages, send ours.
"use strict";

const elements = {
  status: document.getElementById("status"),
  roomForm: document.getElementById("room-form"),
  name: document.getElementById("name"),
  room: document.getElementById("room"),
  messages: document.getElementById("messages"),
  messageForm: document.getElementById("message-form"),
  message: document.getElementById("message"),
  send: document.getElementById("send"),
};
let socket = null;

function addLine(text, author) {
  const item = document.createElement("li");
  if (author === undefined) {
    item.className = "notice";
  } else {
    const who = document.createElement("span");
    who.className = "author";
    who.textContent = author;  // textContent, never innerHTML: messages are untrusted
    item.append(who);
  }
  item.append(document.createTextNode(text));
  elements.messages.append(item);
  elements.messages.scrollTop = elements.messages.scrollHeight;
}

function setConnected(room) {
  const online = room !== null;
  elements.status.textContent = online ? `Connected to #${room}` : "Not connected";
  elements.status.classList.toggle("online", online);
  elements.message.disabled = elements.send.disabled = !online;
  if (online) elements.message.focus();
}

function join(room) {
  if (socket) socket.close();
  elements.messages.replaceChildren();
  setConnected(null);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/chat/${encodeURIComponent(room)}/`);
  socket = ws;
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;  // a room we left: its last messages are not for this one
    const data = JSON.parse(event.data);
    if (data.type === "joined") {
      setConnected(data.room);
      addLine(`You joined #${data.room}.`);
    } else if (data.type === "message") {
      addLine(data.text, data.name);
    }
  });
  ws.addEventListener("close", () => {
    if (socket === ws) {
      setConnected(null);
      addLine("Disconnected.");
    }
  });
}

// Join the room the form names, when it is a valid room name (the server's slug).
function joinFromForm() {
  const room = elements.room.value.trim();
  if (/^[-a-zA-Z0-9_]+$/.test(room)) {
    if (location.hash.slice(1) !== room) location.hash = room;
    join(room);
  }
}

elements.roomForm.addEventListener("submit", (event) => {
  event.preventDefault();
  joinFromForm();
});

elements.messageForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = elements.message.value.trim();
  if (text && socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ name: elements.name.value, text }));
    elements.message.value = "";
  }
});

// On load, join the room in the address (#room), else the form's default room.
if (location.hash.length > 1) {
  elements.room.value = decodeURIComponent(location.hash.slice(1));
}
joinFromForm();
