// cloudsim dashboard: polls /api/state and keeps the page in step without re-rendering
// what the user is touching. Plain JS, no libraries, works offline.
"use strict";

const POLL_MS = 700;
const cards = new Map(); // "cloud/device id" -> {el, thing, tiles: Map(var name -> tile)}
let lastEventSeq = 0;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function put(el, ...children) {
  el.replaceChildren(...children.filter(c => c !== null && c !== undefined));
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function write(thingId, name, value) {
  return api("/api/write", {thing_id: thingId, name: name, value: value})
    .catch(err => setStatus(String(err), true));
}

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.style.color = bad ? "#ff9aa6" : "";
}

function ago(t) {
  if (!t) return "";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

const isNum = v => typeof v === "number";
const fmt = v => isNum(v) ? (Number.isInteger(v) ? String(v) : String(Number(v.toFixed(6)))) :
  (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));

// ---- variables: scalar "name" or composite "name:field" records --------------------------

function groupValues(values) {
  const groups = new Map();
  for (const [full, v] of Object.entries(values)) {
    const i = full.indexOf(":");
    if (i > 0 && full !== "r:m") {
      const base = full.slice(0, i);
      if (!groups.has(base)) groups.set(base, {composite: true, fields: {}});
      groups.get(base).fields[full.slice(i + 1)] = v;
    } else {
      groups.set(full, {composite: false, value: v});
    }
  }
  return groups;
}

function hsbToHex(hue, sat, bri) {
  const s = sat / 100, v = bri / 100;
  const f = n => { const k = (n + hue / 60) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1)); };
  return "#" + [f(5), f(3), f(1)].map(x => Math.round(x * 255).toString(16).padStart(2, "0")).join("");
}

function hexToHsb(hex) {
  const n = parseInt(hex.slice(1), 16);
  const r = (n >> 16 & 255) / 255, g = (n >> 8 & 255) / 255, b = (n & 255) / 255;
  const max = Math.max(r, g, b), d = max - Math.min(r, g, b);
  let hue = 0;
  if (d) hue = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  hue = (hue * 60 + 360) % 360;
  return {hue: Math.round(hue * 10) / 10, sat: max ? Math.round(d / max * 1000) / 10 : 0,
          bri: Math.round(max * 1000) / 10};
}

// A widget edits one scalar; onSet(newValue) is called when the user commits a change.
// compact: no slider (composite fields such as a Location's lat/lon have no sane range).
function scalarWidget(name, value, onSet, compact) {
  if (typeof value === "boolean") {
    const input = h("input", {type: "checkbox", "data-var": name,
                              onchange: () => onSet(input.checked)});
    const label = h("label", {class: "switch", "data-switch": name}, input, h("span", {class: "slider"}));
    return {el: label, update: v => { if (document.activeElement !== input) input.checked = !!v; }};
  }
  if (isNum(value)) {
    const integer = Number.isInteger(value);
    const lo = Math.min(0, Math.floor(value)), hi = Math.max(100, Math.ceil(Math.abs(value) * 1.5));
    const range = h("input", {type: "range", min: lo, max: hi, step: integer ? 1 : 0.1, "data-var": name,
                              onchange: () => onSet(Number(range.value))});
    const box = h("input", {type: "number", step: integer ? 1 : "any", "data-input": name});
    const btn = h("button", {type: "button", onclick: () => box.value !== "" && onSet(Number(box.value))}, "Set");
    const el = compact ? h("div", {class: "row"}, box, btn) :
      h("div", {}, h("div", {class: "row"}, range), h("div", {class: "row"}, box, btn));
    return {el, update: v => {
      if (document.activeElement !== range) range.value = v;
      if (document.activeElement !== box && box.value === "") box.placeholder = fmt(v);
    }};
  }
  const box = h("input", {type: "text", "data-input": name});
  const btn = h("button", {type: "button", onclick: () => onSet(box.value)}, "Set");
  return {el: h("div", {class: "row"}, box, btn),
          update: v => { if (document.activeElement !== box) box.placeholder = fmt(v); }};
}

function plot(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "plot");
  svg.setAttribute("viewBox", "0 0 240 46");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  svg.append(line);
  const caption = h("div", {class: "plot-range"});
  const short = v => String(Number(v.toFixed(2)));
  return {el: h("div", {}, svg, caption), update: pts => {
    pts = (pts || []).slice(-120);
    if (pts.length < 2) { line.setAttribute("points", ""); caption.textContent = ""; return; }
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0] || t0 + 1;
    let lo = Math.min(...pts.map(p => p[1])), hi = Math.max(...pts.map(p => p[1]));
    caption.textContent = "last " + pts.length + " · min " + short(lo) + " · max " + short(hi);
    if (hi === lo) { hi += 1; lo -= 1; }
    line.setAttribute("points", pts.map(([t, v]) =>
      ((t - t0) / (t1 - t0 || 1) * 236 + 2).toFixed(1) + "," + (42 - (v - lo) / (hi - lo) * 38).toFixed(1)).join(" "));
  }};
}

function makeTile(thingId, name, group) {
  const valueEl = h("div", {class: "value" + (group.composite ? " small" : ""), "data-value": name});
  const ageEl = h("span", {class: "age"});
  const typeEl = h("span", {class: "type"});
  const tile = h("div", {class: "var", "data-tile": name}, ageEl, h("span", {class: "name"}, name), typeEl, valueEl);
  const parts = [];
  let current = group.composite ? Object.assign({}, group.fields) : group.value;
  let history = null;
  if (group.composite) {
    const f = group.fields;
    typeEl.textContent = ("hue" in f && "bri" in f) ? "color" : ("lat" in f && "lon" in f) ? "location" : "composite";
    if ("hue" in f && "sat" in f && "bri" in f) {
      const swatch = h("span", {class: "swatch"});
      const picker = h("input", {type: "color", "data-color": name, onchange: () =>
        write(thingId, name, Object.assign({}, current, hexToHsb(picker.value)))});
      tile.append(h("div", {class: "row"}, swatch, picker));
      parts.push({update: v => { const hex = hsbToHex(v.hue, v.sat, v.bri);
        swatch.style.background = hex; if (document.activeElement !== picker) picker.value = hex; }});
    }
    for (const field of Object.keys(f)) {
      if (["hue", "sat", "bri"].includes(field) && "hue" in f && "sat" in f) continue;
      const w = scalarWidget(name + ":" + field, f[field], nv =>
        write(thingId, name, Object.assign({}, current, {[field]: nv})), true);
      tile.append(h("div", {class: "row field"}, h("span", {class: "muted"}, field), w.el));
      parts.push({update: v => w.update(v[field])});
    }
  } else {
    typeEl.textContent = typeof group.value === "boolean" ? "switch" : isNum(group.value) ? "number" : "text";
    const w = scalarWidget(name, group.value, nv => write(thingId, name, nv));
    tile.append(w.el);
    parts.push(w);
    if (isNum(group.value)) { history = plot(); tile.append(history.el); }
  }
  return {el: tile, update(group, updated, hist) {
    current = group.composite ? Object.assign({}, group.fields) : group.value;
    valueEl.textContent = group.composite ?
      Object.entries(group.fields).map(([k, v]) => k + " " + fmt(v)).join("  ") : fmt(group.value);
    ageEl.textContent = ago(updated);
    for (const p of parts) p.update(current);
    if (history) history.update(hist);
  }};
}

// ---- devices -----------------------------------------------------------------------------

// Every cloud's devices get a card with the cloud's name, state and a Drop button; the
// variable tiles and Detach are the Arduino plug-in's; other clouds get clouds.js's panel.
function makeCard(dev) {
  const dot = h("span", {class: "dot"});
  const tags = h("span", {});
  const vars = h("div", {class: "vars"});
  const id = encodeURIComponent(dev.id);
  const actions = h("span", {class: "actions"},
    h("button", {type: "button", title: "cut the connection",
                 onclick: () => api("/api/cloud/" + encodeURIComponent(dev.cloud) + "/device/" + id + "/drop", {})}, "Drop"));
  if (dev.cloud === "arduino")
    actions.append(h("button", {type: "button", title: "send ThingDetach",
                                onclick: () => api("/api/device/" + id + "/detach", {})}, "Detach"));
  const el = h("article", {class: "device", "data-device": dev.id, "data-cloud": dev.cloud},
    h("div", {class: "device-head"}, dot, h("h2", {}, dev.id),
      h("span", {class: "tag cloud", "data-cloud-name": dev.cloud}, dev.cloud), tags, actions),
    vars);
  document.getElementById("devices").append(el);
  return {el, dot, tags, vars, thing: null, tiles: new Map()};
}

function renderDevice(dev, things, st) {
  const key = dev.cloud + "/" + dev.id;
  let card = cards.get(key);
  if (!card) { card = makeCard(dev); cards.set(key, card); }
  card.dot.className = "dot" + (dev.connected ? " on" : "");
  card.el.dataset.connected = dev.connected ? "1" : "0";
  if (dev.cloud !== "arduino") {
    put(card.tags, h("span", {class: "tag"}, dev.connected ? "online · " + dev.auth : "offline"));
    if (window.renderCloudPanel) window.renderCloudPanel(card, dev, st);  // clouds.js
    return;
  }
  put(card.tags,
    h("span", {class: "tag"}, dev.connected ? "online · " + dev.auth : "offline"),
    dev.lib_version ? h("span", {class: "tag"}, dev.lib_version) : null,
    dev.thing_id ? h("span", {class: "tag", title: "thing id"}, "thing " + dev.thing_id.slice(0, 8))
                 : h("span", {class: "tag warn"}, "not linked to a thing"));
  if (card.thing !== dev.thing_id) { card.thing = dev.thing_id; card.tiles.clear(); card.vars.replaceChildren(); }
  const thing = dev.thing_id && things && things[dev.thing_id];
  if (!thing) return;
  const groups = groupValues(thing.values);
  if (!groups.size && !card.vars.firstChild) card.vars.append(h("div", {class: "empty"}, "no values yet"));
  for (const [name, group] of groups) {
    let tile = card.tiles.get(name);
    if (!tile) {
      const empty = card.vars.querySelector(".empty");
      if (empty) empty.remove();
      tile = makeTile(dev.thing_id, name, group);
      card.tiles.set(name, tile);
      card.vars.append(tile.el);
    }
    const key = group.composite ? name + ":" + Object.keys(group.fields)[0] : name;
    tile.update(group, thing.updated[key], thing.history[name]);
  }
}

function renderEvents(events) {
  const list = document.getElementById("events");
  for (const e of events) {
    if (e.seq <= lastEventSeq) continue;
    lastEventSeq = e.seq;
    const t = new Date(e.t * 1000).toLocaleTimeString();
    list.prepend(h("li", {}, t + "  " + (e.cloud || "").padEnd(9) + (e.device || "cloud").slice(0, 13).padEnd(14),
      h("span", {class: "k " + e.kind}, e.kind), " " + e.text));
  }
  while (list.children.length > 200) list.lastChild.remove();
}

function renderKnobs(knobs, replyKinds) {
  const box = document.getElementById("knob-kinds");
  if (!box.firstChild) {
    for (const what of ["mute", "malformed"]) {
      const fs = h("fieldset", {}, h("legend", {}, what));
      for (const k of replyKinds)
        fs.append(h("label", {}, h("input", {type: "checkbox", "data-knob": what, value: k, onchange: sendKnobs}), " " + k + " "));
      box.append(fs);
    }
    document.getElementById("knob-delay").addEventListener("change", sendKnobs);
    document.getElementById("knob-refuse").addEventListener("change", sendKnobs);
  }
  const delay = document.getElementById("knob-delay");
  if (document.activeElement !== delay) delay.value = knobs.reply_delay_s;
  document.getElementById("knob-refuse").checked = knobs.refuse_connect;
  for (const cb of box.querySelectorAll("input[data-knob]")) cb.checked = knobs[cb.dataset.knob].includes(cb.value);
}

function sendKnobs() {
  const pick = what => [...document.querySelectorAll("input[data-knob=" + what + "]:checked")].map(c => c.value);
  api("/api/knobs", {reply_delay_s: Number(document.getElementById("knob-delay").value || 0),
                     refuse_connect: document.getElementById("knob-refuse").checked,
                     mute: pick("mute"), malformed: pick("malformed")}).catch(e => setStatus(String(e), true));
}

async function poll() {
  try {
    const st = await api("/api/state");
    for (const dev of st.devices) renderDevice(dev, st.things, st);
    if (!st.devices.length && !document.querySelector("#devices .empty"))
      document.getElementById("devices").append(h("div", {class: "panel empty"},
        "No devices registered: python -m tools.cloudsim provision --device ID"));
    if (st.devices.length) { const e = document.querySelector("#devices > .empty"); if (e) e.remove(); }
    renderEvents(st.events);
    renderKnobs(st.knobs, st.reply_kinds);
    const online = st.devices.filter(d => d.connected).length;
    setStatus(online + "/" + st.devices.length + " devices online · " + st.clouds.join(", ") + " · ports " +
              Object.entries(st.ports).map(([k, v]) => k + " :" + v).join(" "));
    document.body.dataset.ready = "1";
  } catch (err) {
    setStatus("emulator unreachable: " + err.message, true);
  }
  setTimeout(poll, POLL_MS);
}

poll();
