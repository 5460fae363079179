// The player: registers play/pause/volume/status for its own id and publishes its state.
"use strict";
const PREFIX = "com.crossway.video";
const video = document.getElementById("video");
const statusLine = document.getElementById("status");

function playerId() {
  const id = new URLSearchParams(location.search).get("id") || "";
  if (/^[a-z0-9]{1,32}$/.test(id)) return id;
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const fresh = Array.from(bytes, (b) => (b % 36).toString(36)).join("");
  history.replaceState(null, "", `?id=${fresh}`);
  return fresh;
}

const id = playerId();
const prefix = `${PREFIX}.${id}`;
document.getElementById("player-id").textContent = id;
document.getElementById("qr").src = `qr/?id=${id}`;
document.getElementById("remote-link").href = `remote.html?id=${id}`;

function state() {
  return { paused: video.paused, volume: video.volume, muted: video.muted, time: video.currentTime };
}

// Browsers refuse sound that no click on this page allowed: then play muted, and say so.
async function play() {
  try {
    await video.play();
  } catch (error) {
    if (error.name !== "NotAllowedError") throw error;
    video.muted = true;
    await video.play();
  }
  return state();
}

function setVolume(level) {
  const wasPlaying = !video.paused;
  video.volume = Math.min(1, Math.max(0, Number(level)));
  video.muted = false;
  // Unmuting without a click on this page pauses the video in Chromium: go back to muted play.
  if (wasPlaying && video.paused) return play();
  return state();
}

let session = null;
function publishState() {
  if (session) session.publish(`${prefix}.state`, [state()]);
}
for (const name of ["play", "pause", "volumechange"]) video.addEventListener(name, publishState);

const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const connection = new autobahn.Connection({ url, realm: "realm1" });
connection.onopen = async (joined) => {
  await Promise.all([
    joined.register(`${prefix}.play`, play),
    joined.register(`${prefix}.pause`, () => { video.pause(); return state(); }),
    joined.register(`${prefix}.volume`, ([level]) => setVolume(level)),
    joined.register(`${prefix}.status`, state),
  ]);
  session = joined;
  publishState();
  statusLine.textContent = "Ready: waiting for a remote.";
};
connection.onclose = (reason) => {
  session = null;
  statusLine.textContent = `Disconnected (${reason}); retrying…`;
};
connection.open();
