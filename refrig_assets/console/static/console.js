// Operator console: buttons call the JSON API, then the page reloads to show the new state.
(function () {
  "use strict";
  const OPERATOR_KEY = "refrig.operator";
  const FLASH_KEY = "refrig.flash";
  const operator = document.getElementById("operator");
  const flash = document.getElementById("flash");

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

  if (operator) {
    operator.value = localStorage.getItem(OPERATOR_KEY) || "";
    operator.addEventListener("input", function () {
      localStorage.setItem(OPERATOR_KEY, operator.value.trim());
      operator.classList.remove("missing");
    });
  }

  function actor() {
    const name = operator ? operator.value.trim() : "";
    if (!name) {
      show("Enter your name in the Operator box (top right) first: every action is recorded with who did it.", true);
      if (operator) { operator.classList.add("missing"); operator.focus(); }
    }
    return name;
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
    if (url.endsWith("/acknowledge")) {
      let text = "Alert acknowledged.";
      if (body.work_order) text += " Work order " + body.work_order.work_order_id + " sent.";
      if (body.work_order_error) text += " Work order failed: " + body.work_order_error;
      return text;
    }
    if (url.endsWith("/resolve")) return "Alert resolved (recorded as a confirmed incident).";
    if (url.endsWith("/work-order")) return "Work order " + body.work_order_id + " " + body.status + " to " + body.destination + ".";
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
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        body: JSON.stringify(payload),
      });
      const body = await response.json().catch(function () { return {}; });
      if (!response.ok) {
        show("Refused (" + response.status + "): " + describe(body.detail || response.statusText), true);
        return;
      }
      sessionStorage.setItem(FLASH_KEY, summarise(url, body));
      window.location.reload();
    } catch (err) {
      show("Could not reach the console: " + err, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.querySelectorAll("[data-action]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();
      const name = actor();
      if (!name) return;
      const payload = { actor: name };
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

  document.querySelectorAll("[data-maintenance-form]").forEach(function (form) {
    const now = new Date();
    form.querySelectorAll("input[data-default]").forEach(function (input) {
      const hours = input.getAttribute("data-default") === "now+4h" ? 4 : 0;
      input.value = utcInputValue(new Date(now.getTime() + hours * 3600 * 1000));
    });
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
      const name = actor();
      if (!name) return;
      const data = new FormData(form);
      post("/api/maintenance", {
        scope: data.get("scope"),
        target: String(data.get("target") || "").trim(),
        starts_at: data.get("starts_at") + ":00Z",
        ends_at: data.get("ends_at") + ":00Z",
        reason: String(data.get("reason") || "").trim(),
        actor: name,
      }, form.querySelector("button[type=submit]"));
    });
  });

  document.querySelectorAll("tr[data-alert-id]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, select")) return;
      window.location.href = "/alerts/" + row.getAttribute("data-alert-id");
    });
  });

  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select, input[type=checkbox]").forEach(function (control) {
      control.addEventListener("change", function () { filters.submit(); });
    });
  }
})();
