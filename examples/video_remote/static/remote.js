// The remote: calls its player's procedures and shows the state the player publishes.
"use strict";
const PREFIX = "com.crossway.video";
const toggle = document.getElementById("toggle");
const slider = document.getElementById("volume");
const mutedNote = document.getElementById("muted");
const statusLine = document.getElementById("status");
const id = new URLSearchParams(location.search).get("id") || "";
document.getElementById("player-id").textContent = id;

let session = null;
let current = null;
let dragging = false;

function show(state) {
  current = state;
  toggle.textContent = state.paused ? "Play" : "Pause";
  toggle.disabled = slider.disabled = false;
  if (!dragging) slider.value = state.volume;
  mutedNote.hidden = !(state.muted && !state.paused);
  statusLine.textContent = `Player ${id}: ${state.paused ? "paused" : "playing"}.`;
}

async function call(procedure, args = []) {
  try {
    show(await session.call(`${PREFIX}.${id}.${procedure}`, args));
  } catch (error) {
    const missing = error.error === "wamp.error.no_such_procedure";
    statusLine.textContent = missing ? `Player ${id} is not open.` : `Error: ${error.error}`;
  }
}

toggle.addEventListener("click", () => call(current && !current.paused ? "pause" : "play"));
slider.addEventListener("pointerdown", () => { dragging = true; });
slider.addEventListener("pointerup", () => { dragging = false; });
slider.addEventListener("input", () => call("volume", [Number(slider.value)]));

if (!/^[a-z0-9]{1,32}$/.test(id)) {
  statusLine.textContent = "No player id: open this page from a player's QR code.";
} else {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const connection = new autobahn.Connection({ url, realm: "realm1" });
  connection.onopen = async (joined) => {
    session = joined;
    // The player publishes its state when it (re)joins and whenever it changes.
    await joined.subscribe(`${PREFIX}.${id}.state`, ([state]) => show(state));
    await call("status");
  };
  connection.onclose = (reason) => {
    session = null;
    toggle.disabled = slider.disabled = true;
    statusLine.textContent = `Disconnected (${reason}); retrying…`;
  };
  connection.open();
}
