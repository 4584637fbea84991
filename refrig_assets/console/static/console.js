// Operator console: buttons call the JSON API as the signed-in identity, then the page reloads.
// The alert list refreshes itself (keeping the selection), supports bulk actions and j/k/x/a.
(function () {
  "use strict";
  const FLASH_KEY = "refrig.flash";
  const SELECTION_KEY = "refrig.selection";
  const flash = document.getElementById("flash");
  const csrfMeta = document.querySelector("meta[name=csrf-token]");

  function show(message, isError) {
    flash.textContent = message;
    flash.classList.toggle("error", Boolean(isError));
    flash.hidden = false;
  }

  const pending = sessionStorage.getItem(FLASH_KEY);
  if (pending) {
    sessionStorage.removeItem(FLASH_KEY);
    show(pending, false);
  }

  function describe(detail) {
    if (typeof detail === "string") return detail;
    return JSON.stringify(detail);
  }

  function summarise(url, body) {
    if (url.endsWith("/false-positive")) {
      const rules = body.rules || [];
      if (rules.length) return "Marked false positive. Rule " + rules[0].rule_id + " " + rules[0].status.toLowerCase() + ": " + rules[0].description;
      return "Marked false positive (" + body.false_positives + " of " + body.threshold + " on this device and contributor before a rule is proposed).";
    }
    if (url.endsWith("/bulk")) {
      let text = body.done.length + (url.indexOf("incidents") >= 0 ? " incident(s) " : " alert(s) ") + (body.action === "acknowledge" ? "acknowledged" : "resolved") + ".";
      if (body.failed.length) text += " " + body.failed.length + " left as they were: " + body.failed.map(function (f) { return f.detail; }).join("; ");
      return text;
    }
    if (url.indexOf("/api/incidents/") >= 0) {
      if (url.endsWith("/acknowledge")) return "Incident acknowledged (its open alerts too).";
      if (url.endsWith("/resolve")) return "Incident resolved (its alerts too).";
      return "Incident marked false positive (its alerts too).";
    }
    if (url.endsWith("/acknowledge")) {
      let text = "Alert acknowledged.";
      if (body.work_order) text += " Work order " + body.work_order.work_order_id + " sent.";
      if (body.work_order_error) text += " Work order failed: " + body.work_order_error;
      return text;
    }
    if (url.endsWith("/resolve")) return "Alert resolved (recorded as a confirmed incident).";
    if (url.endsWith("/work-order")) return "Work order " + body.work_order_id + " " + body.status + " to " + body.destination + ".";
    if (url.indexOf("/silences") >= 0 && body.description) {
      return (body.cancelled_at ? "Ended " : "Added ") + body.description;
    }
    if (url.indexOf("/maintenance") >= 0 && body.window) {
      const n = (body.suppressed_alerts || []).length, r = (body.restored_alerts || []).length;
      if (body.window.cancelled_at) return "Maintenance window #" + body.window.id + " cancelled; " + r + " alert(s) restored.";
      return "Maintenance window #" + body.window.id + " declared; " + n + " alert(s) suppressed.";
    }
    if (body.rule_id) return "Rule " + body.rule_id + " is now " + body.status.toLowerCase() + ".";
    return "Done.";
  }

  async function post(url, payload, button) {
    if (button) button.disabled = true;
    const headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (csrfMeta && csrfMeta.content) headers[csrfMeta.dataset.header] = csrfMeta.content;
    try {
      const response = await fetch(url, { method: "POST", headers: headers, body: JSON.stringify(payload), credentials: "same-origin" });
      const body = await response.json().catch(function () { return {}; });
      if (!response.ok) {
        show("Refused (" + response.status + "): " + describe(body.detail || response.statusText), true);
        return false;
      }
      sessionStorage.setItem(FLASH_KEY, summarise(url, body));
      window.location.reload();
      return true;
    } catch (err) {
      show("Could not reach the console: " + err, true);
      return false;
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.querySelectorAll("[data-action]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      const payload = {};
      const noteSelector = button.getAttribute("data-note");
      if (noteSelector) {
        const note = document.querySelector(noteSelector);
        payload.note = note ? note.value.trim() : "";
        if (button.getAttribute("data-require-note") && !payload.note) {
          show("Add a note saying why this is a false positive: it is kept with the label.", true);
          if (note) note.focus();
          return;
        }
      }
      post(button.getAttribute("data-action"), payload, button);
    });
  });

  function utcInputValue(date) {
    return date.toISOString().slice(0, 16);
  }

  document.querySelectorAll("input[data-default]").forEach(function (input) {
    const hours = input.getAttribute("data-default") === "now+4h" ? 4 : 0;
    input.value = utcInputValue(new Date(Date.now() + hours * 3600 * 1000));
  });

  document.querySelectorAll("[data-maintenance-form]").forEach(function (form) {
    const scope = form.querySelector("select[name=scope]");
    const target = form.querySelector("input[name=target][type=hidden]");
    if (scope && target) {
      scope.addEventListener("change", function () {
        const option = scope.options[scope.selectedIndex];
        if (option.dataset.target) target.value = option.dataset.target;
      });
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const data = new FormData(form);
      post("/api/maintenance", {
        scope: data.get("scope"),
        target: String(data.get("target") || "").trim(),
        starts_at: data.get("starts_at") + ":00Z",
        ends_at: data.get("ends_at") + ":00Z",
        reason: String(data.get("reason") || "").trim(),
      }, form.querySelector("button[type=submit]"));
    });
  });

  document.querySelectorAll("[data-silence-form]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const data = new FormData(form);
      let matcher = data.get("matcher"), value = String(data.get("value") || "").trim();
      if (data.get("target")) {
        const parts = String(data.get("target")).split(":");
        matcher = parts.shift();
        value = parts.join(":");
      }
      const payload = {
        matcher: matcher,
        value: value,
        minutes: Number(data.get("minutes")),
        reason: String(data.get("reason") || "").trim(),
        recurrence: data.get("recurrence") || "none",
      };
      if (data.get("starts_at")) payload.starts_at = data.get("starts_at") + ":00Z";
      if (data.get("until")) payload.until = data.get("until") + ":00Z";
      post("/api/silences", payload, form.querySelector("button[type=submit]"));
    });
  });

  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select, input[type=checkbox]").forEach(function (control) {
      control.addEventListener("change", function () { filters.submit(); });
    });
  }

  // -- the alert list: selection, bulk actions, keyboard, auto-refresh --------------------
  const list = document.getElementById("triage-list");
  if (!list) return;
  const itemUrl = list.dataset.itemUrl, bulkUrl = list.dataset.bulkUrl, bulkField = list.dataset.bulkField;

  function bulk(action, ids, button) {
    const payload = { action: action };
    payload[bulkField] = ids;
    return post(bulkUrl, payload, button);
  }
  const selectionKey = SELECTION_KEY + ":" + window.location.pathname;
  let selected = new Set(JSON.parse(sessionStorage.getItem(selectionKey) || "[]"));
  let cursor = -1;

  function rows() { return Array.from(list.querySelectorAll("tbody tr[data-id]")); }

  function remember() { sessionStorage.setItem(selectionKey, JSON.stringify(Array.from(selected))); }

  function paint() {
    const present = new Set(rows().map(function (r) { return r.dataset.id; }));
    selected.forEach(function (id) { if (!present.has(id)) selected.delete(id); });
    rows().forEach(function (row, i) {
      const box = row.querySelector("input.pick-item");
      if (box) box.checked = selected.has(row.dataset.id);
      row.classList.toggle("selected", selected.has(row.dataset.id));
      row.classList.toggle("focused", i === cursor);
    });
    const count = document.getElementById("bulk-count");
    if (count) count.textContent = selected.size + " selected";
    document.querySelectorAll("[data-bulk]").forEach(function (b) { b.disabled = selected.size === 0; });
    remember();
  }

  function wire() {
    rows().forEach(function (row) {
      row.addEventListener("click", function (event) {
        if (event.target.closest("a, button, input, select, label")) return;
        window.location.href = itemUrl + row.dataset.id;
      });
      const box = row.querySelector("input.pick-item");
      if (box) box.addEventListener("change", function () {
        if (box.checked) selected.add(row.dataset.id); else selected.delete(row.dataset.id);
        paint();
      });
    });
    list.querySelectorAll("[data-bulk]").forEach(function (button) {
      button.addEventListener("click", function () {
        const ids = Array.from(selected);
        if (!ids.length) return;
        selected = new Set();
        remember();
        bulk(button.dataset.bulk, ids, button);
      });
    });
    const all = document.getElementById("select-all");
    if (all) all.addEventListener("change", function () {
      rows().forEach(function (r) { if (all.checked) selected.add(r.dataset.id); else selected.delete(r.dataset.id); });
      paint();
    });
    paint();
  }

  document.addEventListener("keydown", function (event) {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const all = rows();
    if (!all.length) return;
    if (event.key === "j" || event.key === "k") {
      cursor = Math.max(0, Math.min(all.length - 1, cursor + (event.key === "j" ? 1 : -1)));
      all[cursor].scrollIntoView({ block: "nearest" });
      paint();
    } else if (event.key === "x" && cursor >= 0) {
      const id = all[cursor].dataset.id;
      if (selected.has(id)) selected.delete(id); else selected.add(id);
      paint();
    } else if (event.key === "Enter" && cursor >= 0) {
      window.location.href = itemUrl + all[cursor].dataset.id;
    } else if (event.key === "a" && document.body.dataset.role !== "viewer") {
      const ids = selected.size ? Array.from(selected) : (cursor >= 0 ? [all[cursor].dataset.id] : []);
      if (!ids.length) return;
      selected = new Set();
      remember();
      bulk("acknowledge", ids, null);
    }
  });

  async function refresh() {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("triage-list");
      if (!fresh) return;
      list.innerHTML = fresh.innerHTML;
      wire();
      list.dispatchEvent(new CustomEvent("refreshed"));
    } catch (err) { /* try again next time */ }
  }

  wire();
  const every = Number(list.dataset.refresh || 0);
  if (every > 0) window.setInterval(refresh, every * 1000);
  window.refrigRefresh = refresh;
})();
