// The SMS inbox page: plain DOM, no framework, no build step, nothing from the internet.
// Text from messages is only ever set with textContent, never parsed as HTML.
"use strict";

(function () {
  const conversationsEl = document.getElementById("conversations");
  const emptyEl = document.getElementById("empty");
  const statusEl = document.getElementById("status");
  const searchEl = document.getElementById("search");
  const clearEl = document.getElementById("clear");
  const STATES = [["sent", "delivered"], ["failed", "failed"], ["sending", "sending"]];
  let messages = [];
  let seen = null; // message ids already shown, to mark new arrivals
  let loading = false;
  let again = false;

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else if (name.startsWith("data-") || name.startsWith("aria-") || name === "for") {
        node.setAttribute(name, value);
      } else node[name] = value;
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  function setStatus(text, live) {
    statusEl.textContent = text;
    statusEl.classList.toggle("live", Boolean(live));
  }

  async function api(method, path, body) {
    const init = { method, cache: "no-store", credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.href = "login";
      throw new Error("not signed in");
    }
    if (!response.ok) throw new Error(method + " " + path + ": HTTP " + response.status);
    return response.json();
  }

  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      do {
        again = false;
        const data = await api("GET", "messages");
        messages = data.messages;
        render();
      } while (again);
    } catch (error) {
      setStatus("cannot load messages (" + error.message + ")", false);
    } finally {
      loading = false;
    }
  }

  function matches(message, query, digits) {
    if (!query) return true;
    if (message.message.toLowerCase().includes(query)) return true;
    return Boolean(digits) && message.to.includes(digits);
  }

  function conversations(list) {
    const byNumber = new Map();
    list.forEach((message, index) => {
      message._order = index;
      if (!byNumber.has(message.to)) byNumber.set(message.to, []);
      byNumber.get(message.to).push(message);
    });
    const groups = Array.from(byNumber, ([to, items]) => ({
      to,
      items: items.sort((a, b) => b.accepted_at - a.accepted_at || b._order - a._order),
    }));
    groups.sort((a, b) => b.items[0].accepted_at - a.items[0].accepted_at
      || b.items[0]._order - a.items[0]._order);
    return groups;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = el("textarea", { value: text, readOnly: true });
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    return Promise.resolve();
  }

  function textWithCode(message) {
    const p = el("p", { className: "text" });
    const text = message.message;
    if (message.code === null || message.code_at === null) {
      p.textContent = text;
      return p;
    }
    const start = message.code_at;
    const end = start + message.code.length;
    const mark = el("mark", { className: "code", "data-code": message.code, text: message.code });
    const copy = el("button", {
      type: "button", className: "copy", text: "Copy",
      "aria-label": "Copy code " + message.code,
    });
    copy.addEventListener("click", () => {
      copyText(message.code).then(
        () => { copy.textContent = "Copied"; },
        () => { copy.textContent = "Copy failed"; },
      );
    });
    p.append(text.slice(0, start), mark, copy, text.slice(end));
    return p;
  }

  function deliveryControls(message) {
    const id = message.message_id;
    const state = message.delivery;
    const label = STATES.find(([value]) => value === state.status)[1];
    const badge = el("span", {
      className: "badge " + state.status, "data-delivery": state.status,
      text: label + (state.status === "failed" && state.error_code ? " (" + state.error_code + ")" : ""),
    });
    const select = el("select", { id: "state-" + id, "data-focus": id + ":state" },
      STATES.map(([value, text]) => el("option", { value, text, selected: value === state.status })));
    const code = el("input", {
      type: "text", id: "error-" + id, placeholder: "UNDELIVERED", value: state.error_code || "",
      "data-focus": id + ":error",
    });
    const codeLabel = el("label", { for: "error-" + id, text: "error code" });
    const apply = el("button", { type: "button", text: "Set state", "data-focus": id + ":apply" });
    const showCode = () => {
      code.hidden = codeLabel.hidden = select.value !== "failed";
    };
    select.addEventListener("change", showCode);
    showCode();
    apply.addEventListener("click", async () => {
      const body = { status: select.value };
      if (select.value === "failed" && code.value.trim()) body.error_code = code.value.trim();
      try {
        await api("PUT", "messages/" + encodeURIComponent(id) + "/delivery", body);
      } catch (error) {
        setStatus("could not set the state (" + error.message + ")", false);
      }
    });
    return el("div", { className: "delivery" }, [
      el("span", { text: "Delivery:" }), badge,
      el("label", { for: "state-" + id, className: "visually-hidden", text: "New delivery state" }),
      select, codeLabel, code, apply,
    ]);
  }

  function messageItem(message, fresh) {
    const when = new Date(message.accepted_at * 1000);
    const meta = el("dl", { className: "meta" }, [
      el("dt", { text: "Time" }),
      el("dd", {}, [el("time", { dateTime: when.toISOString(), text: when.toLocaleString() })]),
      el("dt", { text: "Sender" }), el("dd", { text: "from " + (message.sender || "(default)") }),
      el("dt", { text: "Operation" }), el("dd", { text: message.action }),
      el("dt", { text: "Encoding" }),
      el("dd", { text: message.encoding + ", " + message.segments
        + (message.segments === 1 ? " segment" : " segments") }),
      message.template_code ? el("dt", { text: "Template" }) : null,
      message.template_code ? el("dd", { text: "template " + message.template_code }) : null,
    ]);
    const item = el("li", {
      className: "message" + (fresh ? " fresh" : ""), "data-message-id": message.message_id,
      "data-to": message.to,
    }, [meta, textWithCode(message), deliveryControls(message)]);
    return item;
  }

  function render() {
    const focused = document.activeElement && document.activeElement.getAttribute("data-focus");
    const typed = focused && document.activeElement.value;
    const query = searchEl.value.trim().toLowerCase();
    const digits = query.replace(/[^0-9]/g, "");
    const shown = messages.filter((message) => matches(message, query, digits));
    const known = seen;
    seen = new Set(messages.map((message) => message.message_id));
    const sections = conversations(shown).map(({ to, items }) => el("section", {
      className: "conversation", "data-to": to, "aria-label": "Messages to +" + to,
    }, [
      el("h2", {}, [el("span", { text: "+" + to }),
        el("span", { className: "count", text: items.length + (items.length === 1 ? " message" : " messages") })]),
      el("ol", { className: "messages" },
        items.map((message) => messageItem(message, known !== null && !known.has(message.message_id)))),
    ]));
    conversationsEl.replaceChildren(...sections);
    emptyEl.hidden = shown.length > 0;
    emptyEl.textContent = messages.length
      ? "No message matches the search."
      : "No messages yet. Send one through the SMS API and it shows up here at once.";
    if (focused) {
      const again = conversationsEl.querySelector('[data-focus="' + CSS.escape(focused) + '"]');
      if (again) {
        if (typeof typed === "string" && again.tagName === "INPUT") again.value = typed;
        again.focus();
      }
    }
  }

  function connect() {
    const events = new EventSource("events");
    events.addEventListener("change", () => { setStatus("live", true); refresh(); });
    events.addEventListener("open", () => setStatus("live", true));
    events.addEventListener("error", () => setStatus("reconnecting", false));
  }

  searchEl.addEventListener("input", render);
  document.getElementById("search-form").addEventListener("submit", (event) => event.preventDefault());
  clearEl.addEventListener("click", async () => {
    try {
      await api("DELETE", "messages");
    } catch (error) {
      setStatus("could not clear (" + error.message + ")", false);
    }
  });
  connect();
  refresh();
})();
