// cloudsim dashboard: the per-cloud panels (Azure, akenza, SAP, Astarte) of a device card:
// forms that inject what the cloud would send, through each plug-in's JSON routes, and a
// "sent" box with what the device sent, from /api/state. Uses h(), put(), api(), fmt() and
// setStatus() from app.js (loaded after this file; called only once the page runs).
"use strict";

function cloudField(label, attrs) {
  const input = h(attrs.rows ? "textarea" : "input", Object.assign({type: "text"}, attrs));
  if (attrs.value !== undefined) input.value = attrs.value;
  return {input, el: h("label", {class: "cf"}, h("span", {class: "muted"}, label), input)};
}

// One injection form: fields [{name, label, value, rows, json}], run(values) -> promise of the
// route's answer, shown under the form (data-result) so the user sees what came back.
function cloudForm(title, action, fields, run) {
  const inputs = {};
  const result = h("pre", {class: "result", "data-result": action});
  const box = h("form", {class: "cloud-form", "data-action": action}, h("h3", {}, title));
  for (const f of fields) {
    const fld = cloudField(f.label, {"data-field": f.name, value: f.value, rows: f.rows});
    inputs[f.name] = fld.input;
    box.append(fld.el);
  }
  const go = h("button", {type: "submit"}, "Send");
  box.append(h("div", {class: "row"}, go), result);
  box.addEventListener("submit", ev => {
    ev.preventDefault();
    const values = {};
    try {
      for (const f of fields) {
        const raw = inputs[f.name].value;
        values[f.name] = f.json ? (raw.trim() === "" ? null : JSON.parse(raw)) : raw;
      }
    } catch (err) {
      result.textContent = "bad JSON: " + err.message;
      result.className = "result bad";
      return;
    }
    result.textContent = "…";
    run(values).then(r => { result.className = "result"; result.textContent = JSON.stringify(r); },
      err => { result.className = "result bad"; result.textContent = String(err.message || err); });
  });
  return box;
}

const devPath = (cloud, dev) => "/api/" + cloud + "/device/" + encodeURIComponent(dev.id) + "/";

const cloudPanels = {
  azure: {
    forms: dev => [
      cloudForm("Desired properties (patch)", "azure-desired",
        [{name: "patch", label: "JSON", value: '{"interval": 30}', rows: 2, json: true}],
        v => api(devPath("azure", dev) + "desired", v.patch)),
      cloudForm("Direct method", "azure-method",
        [{name: "name", label: "name", value: "reboot"},
         {name: "payload", label: "payload JSON", value: "{}", json: true},
         {name: "timeout_s", label: "timeout s", value: "10"}],
        v => api(devPath("azure", dev) + "method",
          {name: v.name, payload: v.payload, timeout_s: Number(v.timeout_s || 10)})),
      cloudForm("Cloud-to-device message", "azure-c2d",
        [{name: "body", label: "body", value: "hello"},
         {name: "properties", label: "properties JSON", value: "{}", json: true}],
        v => api(devPath("azure", dev) + "c2d", {body: v.body, properties: v.properties || {}})),
    ],
    sent: (dev) => ({
      telemetry: dev.telemetry, last_telemetry: dev.last_telemetry,
      reported: dev.twin ? dev.twin.reported : undefined,
    }),
  },
  akenza: {
    forms: dev => [
      cloudForm("Downlink", "akenza-downlink",
        [{name: "topic", label: "sub-topic", value: "commands"},
         {name: "data", label: "JSON", value: '{"led": true}', rows: 2, json: true}],
        v => api(devPath("akenza", dev) + "downlink", {topic: v.topic, data: v.data})),
    ],
    sent: (dev, st) => ({uplinks: ((st.akenza || {})[dev.id] || {}).uplinks}),
  },
  sap: {
    forms: dev => [
      cloudForm("Command", "sap-command",
        [{name: "capability", label: "capability", value: "switch"},
         {name: "sensor", label: "sensor", value: ""},
         {name: "command", label: "command JSON", value: '{"LED": true}', rows: 2, json: true}],
        v => api(devPath("sap", dev) + "command", v)),
    ],
    sent: (dev, st) => ({measures: (((st.sap || {}).devices || {})[dev.id] || {}).measures}),
  },
  astarte: {
    forms: dev => [
      cloudForm("Server property (empty value unsets)", "astarte-property",
        [{name: "interface", label: "interface", value: ""},
         {name: "path", label: "path", value: "/"},
         {name: "value", label: "value JSON", value: "true", json: true}],
        v => api(devPath("astarte", dev) + "server-property", v)),
      cloudForm("Server datastream", "astarte-datastream",
        [{name: "interface", label: "interface", value: ""},
         {name: "path", label: "path", value: "/"},
         {name: "value", label: "value JSON", value: "1", json: true}],
        v => api(devPath("astarte", dev) + "server-datastream", v)),
    ],
    sent: (dev, st) => {
      const d = (((st.astarte || {}).devices) || {})[dev.id] || {};
      return {properties: d.properties, server_properties: d.server_properties,
              datastreams: d.datastreams, rejected: d.rejected};
    },
  },
};

// Called by app.js's renderDevice for every non-Arduino device on every poll: the forms are
// built once (so typing survives polls), the "sent" box is refreshed.
function renderCloudPanel(card, dev, st) {
  const spec = cloudPanels[dev.cloud];
  if (!spec) return;
  if (!card.cloudPanel) {
    const sent = h("pre", {class: "sent", "data-sent": dev.cloud});
    const forms = h("div", {class: "cloud-forms"}, ...spec.forms(dev));
    card.cloudPanel = {sent};
    card.vars.append(forms, h("div", {class: "cloud-sent"}, h("h3", {}, "Sent by the device"), sent));
  }
  const text = JSON.stringify(spec.sent(dev, st), null, 1);
  if (card.cloudPanel.sent.textContent !== text) card.cloudPanel.sent.textContent = text;
}

window.renderCloudPanel = renderCloudPanel;
