// The dashboard: every machine's last sample and a chart of its CPU and memory, live over WAMP.
"use strict";
const HISTORY = 120; // samples kept for the chart (two minutes at one a second)
const machines = new Map(); // ip -> {settings, history: [{cpu, memory}], element}
const container = document.getElementById("machines");

function machine(ip) {
  let entry = machines.get(ip);
  if (!entry) {
    const element = document.createElement("section");
    element.className = "machine";
    element.dataset.ip = ip;
    element.innerHTML = `<h2><span class="name"></span> <small class="ip"></small></h2>
      <svg class="chart" viewBox="0 0 ${HISTORY} 100" preserveAspectRatio="none">
        <polyline class="cpu"/><polyline class="memory"/></svg>
      <div class="legend"><span class="cpu">CPU</span> / <span class="memory">memory</span>, %</div>
      <table><tbody></tbody></table>`;
    element.querySelector(".ip").textContent = ip;
    container.append(element);
    entry = { settings: { ip, name: ip, show_cpus: true, show_memory: true, show_disk: true,
                          disabled: false }, history: [], last: null, element };
    machines.set(ip, entry);
  }
  return entry;
}

function row(kind, label, value) {
  const tr = document.createElement("tr");
  tr.className = kind;
  for (const [cls, text] of [["label", label], ["value", value]]) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

// The chart fills from the left over its first 30 samples, then scrolls.
function points(history, key) {
  const step = HISTORY / (Math.max(history.length, 30) - 1);
  return history.map((sample, i) => sample[key] == null ? null : `${i * step},${100 - sample[key]}`)
    .filter(Boolean).join(" ");
}

function render(entry) {
  const { settings, last, element } = entry;
  element.hidden = settings.disabled;
  element.querySelector(".name").textContent = settings.name;
  const rows = [];
  if (last && settings.show_cpus && last.cpus) {
    last.cpus.forEach((load, i) => rows.push(row("cpu", `CPU ${i}`, `${load.toFixed(1)} %`)));
  }
  if (last && settings.show_memory && last.memory) {
    const gib = (last.memory.used / 2 ** 30).toFixed(1);
    rows.push(row("memory", "Memory", `${last.memory.percent.toFixed(1)} % (${gib} GiB)`));
  }
  if (last && settings.show_disk && last.disks) {
    for (const disk of last.disks) rows.push(row("disk", `Disk ${disk.mount}`, `${disk.percent.toFixed(1)} %`));
  }
  element.querySelector("tbody").replaceChildren(...rows);
  element.querySelector("polyline.cpu").setAttribute("points", settings.show_cpus ? points(entry.history, "cpu") : "");
  element.querySelector("polyline.memory").setAttribute("points", settings.show_memory ? points(entry.history, "memory") : "");
  document.getElementById("empty").hidden = [...machines.values()].some((m) => !m.settings.disabled);
}

function onStats([stats]) {
  const entry = machine(stats.ip);
  entry.last = stats;
  const cpu = stats.cpus && stats.cpus.length ? stats.cpus.reduce((a, b) => a + b, 0) / stats.cpus.length : null;
  entry.history.push({ cpu, memory: stats.memory ? stats.memory.percent : null });
  if (entry.history.length > HISTORY) entry.history.shift();
  render(entry);
}

function onSettings([settings]) {
  const entry = machine(settings.ip);
  Object.assign(entry.settings, settings);
  render(entry);
}

for (const settings of JSON.parse(document.getElementById("clients").textContent)) onSettings([settings]);

const statusLine = document.getElementById("status");
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
// Joins as the logged-in Django user (the session cookie goes with the handshake).
const connection = new autobahn.Connection({ url, realm: "realm1", authmethods: ["cookie"] });
connection.onopen = async (session) => {
  await session.subscribe("clientstats", onStats);
  await session.subscribe("clientconfig", onSettings, { match: "prefix" });
  statusLine.textContent = "Live";
};
connection.onclose = (reason) => { statusLine.textContent = `Disconnected (${reason}); retrying…`; };
connection.open();
