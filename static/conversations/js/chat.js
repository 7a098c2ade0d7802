// Just enough JavaScript to stream a conversation: open the socket, show deltas, reconnect.
// Streaming text is shown as Markdown sanitised by render.js (as text without it); the server's
// sanitised `html` of a finished reply then replaces it. New messages are built from the
// page's <template id="message-template"> and every line under a message comes from the server,
// so their markup and wording live in the templates only.
(() => {
  "use strict";

  // Every string a person reads is translated: Django's JavaScript catalog (/jsi18n/) defines these.
  const gettext = window.gettext || ((text) => text);
  const ngettext = window.ngettext || ((one, many, count) => (count === 1 ? one : many));
  const interpolate = window.interpolate || ((format, values) => values.reduce((text, value) => text.replace("%s", value), format));

  // --- page-wide niceties ---------------------------------------------------------

  // Enter submits, Shift+Enter makes a new line (and IME composition is left alone).
  function submitOnEnter(textarea, submit) {
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
  }

  document.querySelectorAll("textarea[data-enter-submits]").forEach((textarea) => {
    submitOnEnter(textarea, () => {
      if (textarea.value.trim()) textarea.form.requestSubmit();
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  // On a phone the sidebar slides over the page and covers its ☰ toggle, so it closes from inside
  // (its ✕), by Escape, or by a tap on the dimmed page beside it. The focus goes into it when it
  // opens and back to ☰ when it closes, so a keyboard is never left behind the sidebar.
  const toggle = document.querySelector(".sidebar-toggle");
  const sidebar = document.getElementById("sidebar");
  if (toggle && sidebar) {
    const closeButton = sidebar.querySelector(".sidebar-close");
    const sidebarOpen = () => document.body.classList.contains("sidebar-open");
    const setSidebar = (open, { moveFocus = true } = {}) => {
      document.body.classList.toggle("sidebar-open", open);
      toggle.setAttribute("aria-expanded", String(open));
      if (moveFocus) (open ? closeButton : toggle)?.focus();
    };
    toggle.addEventListener("click", () => setSidebar(!sidebarOpen()));
    closeButton?.addEventListener("click", () => setSidebar(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && sidebarOpen()) setSidebar(false);
    });
    // The dimming over the page (app.css) takes the tap, so nothing under it is followed.
    document.addEventListener("click", (event) => {
      if (sidebarOpen() && !sidebar.contains(event.target) && !toggle.contains(event.target)) setSidebar(false);
    });
    // Tabbing out of the open sidebar closes it, leaving the focus where Tab put it.
    sidebar.addEventListener("focusout", (event) => {
      if (sidebarOpen() && event.relatedTarget && !sidebar.contains(event.relatedTarget)) {
        setSidebar(false, { moveFocus: false });
      }
    });
  }

  // Images from elsewhere load only when the reader asks (see conversations/rendering.py).
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.remote-image");
    if (!button) return;
    const src = button.dataset.src || "";
    if (!/^https?:\/\//i.test(src)) return;
    const image = document.createElement("img");
    image.src = src;
    image.alt = button.textContent;
    image.referrerPolicy = "no-referrer";
    image.className = "remote-image-loaded";
    button.replaceWith(image);
  });

  // Dialogs (the Share dialog): opened by a button, and again after a form in it reloads the page.
  document.querySelectorAll("[data-opens]").forEach((button) => {
    const dialog = document.getElementById(button.dataset.opens);
    if (!dialog) return;
    button.addEventListener("click", () => dialog.showModal());
    if (window.location.hash === "#share") dialog.showModal();
  });
  document.querySelectorAll("input.link-url").forEach((field) => {
    field.addEventListener("focus", () => field.select());
  });

  // The line under a model picker describes the model picked (the admin's description, kept in its title).
  document.querySelectorAll("select.model-picker").forEach((select) => {
    const line = document.querySelector(`[data-describes="${select.id}"]`);
    if (!line) return;
    select.addEventListener("change", () => {
      line.textContent = select.selectedOptions[0]?.title || "";
    });
  });

  // --- the conversation page ------------------------------------------------------

  const chat = document.getElementById("chat");
  if (!chat) return;

  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const picker = document.getElementById("model-picker");
  const stopButton = document.getElementById("stop-button");
  const regenerateButton = document.getElementById("regenerate-button");
  const chatError = document.getElementById("chat-error");
  const connectionStatus = document.getElementById("connection-status");
  const messageTemplate = document.getElementById("message-template");

  const socketPath = chat.dataset.socketPath;
  const canWrite = Boolean(composer);
  const showAuthors = chat.dataset.showAuthors === "true";
  const presence = document.getElementById("presence");
  const streaming = new Map(); // reply id -> {text, length (code points), shown (UTF-16 units on screen)}
  let since = Number(chat.dataset.since || 0);
  let awaitingReply = chat.dataset.awaitingReply === "true";
  let socket = null;
  let retryDelay = 500;
  let retryTimer = null;
  let lastDraft = "";
  let lastRequest = null; // the last send or regenerate frame, sent again if its server was shutting down
  let resendOnOpen = null;
  let finished = false; // the server closed for good (deleted, no access)

  const FINAL_CLOSE = {
    4401: gettext("You are logged out. Reload to log in again."),
    4403: gettext("Your access to this conversation was removed."),
    4404: gettext("This conversation is not available."),
    4410: gettext("This conversation was deleted."),
  };

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  function keepScrolled(wasNearBottom) {
    if (wasNearBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  function showError(text) {
    chatError.textContent = text;
    chatError.hidden = !text;
  }

  // A part of the blank message in the page's template (its author line, its note, the marker).
  function templatePart(selector) {
    const part = messageTemplate.content.querySelector(selector).cloneNode(true);
    part.hidden = false;
    return part;
  }

  function messageElement(id, role) {
    let element = list.querySelector(`li.message[data-id="${id}"]`);
    if (element) return element;
    list.querySelector(".messages-empty")?.remove();
    element = templatePart("li.message");
    element.querySelectorAll("[hidden]").forEach((part) => part.remove()); // added when there is one
    element.classList.add(`message--${role}`);
    element.dataset.id = String(id);
    // Keep id order: a caught-up message may belong before ones already shown.
    const later = [...list.querySelectorAll("li.message")].find((other) => Number(other.dataset.id) > id);
    list.insertBefore(element, later || null);
    return element;
  }

  function setStatus(element, status) {
    element.dataset.status = status;
    element.classList.remove("is-streaming", "is-complete", "is-stopped", "is-error");
    element.classList.add(`is-${status}`);
  }

  // The line under a message: its error, or why it was cut off, worded by the server.
  function setNote(element, text, className) {
    let note = element.querySelector(".message-error, .message-note");
    if (!text) {
      note?.remove();
      return;
    }
    if (!note) {
      note = templatePart(".message-note");
      element.append(note);
    }
    note.className = className;
    note.textContent = text;
  }

  function showFinal(element, { status, html, note, note_class: noteClass }) {
    setStatus(element, status);
    element.querySelector(".message-body").innerHTML = html; // sanitised by the server
    window.chatRender?.enhance(element);
    setNote(element, note, noteClass);
  }

  function updateSince() {
    const ids = [...list.querySelectorAll("li.message")].map((element) => Number(element.dataset.id));
    const streamingIds = [...streaming.keys()];
    since = streamingIds.length ? Math.min(...streamingIds) : (ids.length ? Math.max(...ids) + 1 : 0);
  }

  function setBusy() {
    const busy = streaming.size > 0;
    chat.classList.toggle("is-busy", busy);
    if (!canWrite) return;
    stopButton.hidden = !busy;
    regenerateButton.hidden = busy || !list.querySelector("li.message");
  }

  // Where the history sent with the latest reply starts, when older messages were left out.
  function markContextStart(firstSentId) {
    list.querySelector(".context-marker")?.remove();
    const first = firstSentId ? list.querySelector(`li.message[data-id="${firstSentId}"]`) : null;
    if (first) list.insertBefore(templatePart(".context-marker"), first);
  }

  function setAuthor(element, author) {
    if (!showAuthors || !author || element.querySelector(".message-author")) return;
    const name = templatePart(".message-author");
    name.textContent = author;
    element.prepend(name);
  }

  // A streaming reply: its text so far and how many code points that is (the server's
  // offsets count code points, JavaScript strings count UTF-16 units).
  function received(id, text) {
    let length = 0;
    for (const _ of text) length += 1;
    streaming.set(id, { text, length, shown: streaming.get(id)?.shown ?? 0 });
  }

  // The typewriter: frames may carry several words at once (more of them when the server is
  // busy); revealing them over a few animation frames keeps the text flowing smoothly.
  let revealing = false;
  function reveal() {
    revealing = false;
    const wasNearBottom = nearBottom();
    for (const [id, reply] of streaming) {
      if (reply.shown >= reply.text.length) continue;
      let shown = reply.shown + Math.max(1, Math.ceil((reply.text.length - reply.shown) / 6));
      if (shown < reply.text.length && /[\ud800-\udbff]/.test(reply.text[shown - 1])) shown += 1; // keep surrogate pairs whole
      reply.shown = Math.min(shown, reply.text.length);
      const body = messageElement(id, "assistant").querySelector(".message-body");
      const text = reply.text.slice(0, reply.shown);
      window.chatRender ? chatRender.markdown(body, text) : (body.textContent = text); // render.js sanitises
      revealing = revealing || reply.shown < reply.text.length;
    }
    keepScrolled(wasNearBottom);
    if (revealing) window.requestAnimationFrame(reveal);
  }
  function scheduleReveal() {
    if (!revealing) {
      revealing = true;
      window.requestAnimationFrame(reveal);
    }
  }

  const handlers = {
    message({ message }) {
      const wasNearBottom = nearBottom();
      const element = messageElement(message.id, message.role);
      if (message.role === "assistant" && message.context_start) markContextStart(message.context_start);
      if (message.role === "assistant" && message.status !== "streaming") {
        streaming.delete(message.id);
        showFinal(element, message);
      } else {
        setStatus(element, message.status);
        if (message.role === "user") setAuthor(element, message.author);
        element.querySelector(".message-body").textContent = message.content;
        if (message.status === "streaming") {
          received(message.id, message.content);
          streaming.get(message.id).shown = message.content.length;
        }
      }
      if (message.role === "user") awaitingReply = false;
      keepScrolled(wasNearBottom);
    },
    start({ message_id: id, replaces, context_start: contextStart }) {
      if (replaces) list.querySelector(`li.message[data-id="${replaces}"]`)?.remove();
      markContextStart(contextStart);
      const wasNearBottom = nearBottom();
      const element = messageElement(id, "assistant");
      setStatus(element, "streaming");
      if (!streaming.has(id)) received(id, "");
      awaitingReply = false;
      keepScrolled(wasNearBottom);
    },
    delta({ message_id: id, offset, content }) {
      const reply = streaming.get(id) ?? { text: "", length: 0, shown: 0 };
      if (offset !== reply.length) return; // the server sends each socket contiguous text; never garble
      setStatus(messageElement(id, "assistant"), "streaming");
      received(id, reply.text + content);
      scheduleReveal();
    },
    done(frame) {
      const wasNearBottom = nearBottom();
      streaming.delete(frame.message_id);
      showFinal(messageElement(frame.message_id, "assistant"), frame);
      keepScrolled(wasNearBottom);
    },
    error({ code, message, message_id: id }) {
      if (code === "draining" && lastRequest) {
        // This server process is shutting down (a deploy): reconnect, through the proxy to another
        // process, and send the same frame there. The person sees no error.
        resendOnOpen = lastRequest;
        socket?.close();
        return;
      }
      if (code === "reload") {
        window.location.reload();
        return;
      }
      if (id !== undefined) return; // shown under the reply by its `done` frame
      showError(message);
      if (input && lastDraft && !input.value) input.value = lastDraft;
    },
    access() {
      // Viewer became collaborator or back: the page differs (the message box), so load it again.
      window.location.reload();
    },
    presence({ people, guests }) {
      if (!presence) return;
      const parts = [...people];
      if (guests) parts.push(interpolate(ngettext("%s guest", "%s guests", guests), [guests]));
      presence.textContent = parts.length ? interpolate(gettext("Also here: %s"), [parts.join(", ")]) : "";
      presence.hidden = !parts.length;
    },
  };

  function handle(frame) {
    handlers[frame.type]?.(frame);
    if (frame.type !== "delta") {
      updateSince();
      setBusy();
    }
  }

  // A reply too long for one frame comes without its text and HTML, and with where to fetch them.
  const LOAD_FAILED = gettext("A long message could not be loaded; reload the page.");
  let handling = Promise.resolve();
  async function whole(frame) {
    const part = frame.type === "message" ? frame.message : frame;
    if (!part.fetch) return frame;
    const response = await fetch(part.fetch, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status} fetching ${part.fetch}`);
    const saved = await response.json();
    part.content = saved.content;
    part.html = saved.html;
    return frame;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${window.location.host}${socketPath}?since=${since}`);
    socket.addEventListener("open", () => {
      if (resendOnOpen) {
        socket.send(JSON.stringify(resendOnOpen));
        resendOnOpen = null;
      }
      retryDelay = 500;
      connectionStatus.hidden = true;
      composer?.classList.remove("is-offline");
      if (canWrite && awaitingReply && streaming.size === 0) {
        // The first message came from the new-chat form: ask for its reply now.
        awaitingReply = false;
        send({ type: "regenerate", model: selectedModel() });
      }
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      // In order, even when a frame must first fetch what it could not carry.
      handling = handling.then(() => whole(frame)).then(handle, () => showError(LOAD_FAILED));
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (FINAL_CLOSE[event.code]) {
        finished = true;
        showError(FINAL_CLOSE[event.code]);
        if (composer) composer.hidden = true;
        if (presence) presence.hidden = true;
        return;
      }
      connectionStatus.hidden = false;
      composer?.classList.add("is-offline");
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (finished || retryTimer) return;
    const delay = retryDelay * (0.75 + Math.random() / 2);
    retryDelay = Math.min(retryDelay * 2, 10000);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
  }

  window.addEventListener("online", () => {
    if (!socket && retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
      connect();
    }
  });

  function selectedModel() {
    return picker && picker.value ? Number(picker.value) : null;
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError(gettext("Offline: the message was not sent. It will be here when the connection is back."));
      return false;
    }
    socket.send(JSON.stringify(frame));
    if (frame.type === "send" || frame.type === "regenerate") lastRequest = frame;
    return true;
  }

  function sendMessage() {
    const content = input.value;
    if (!content.trim() || streaming.size > 0) return;
    showError("");
    if (send({ type: "send", content, model: selectedModel() })) {
      lastDraft = content;
      input.value = "";
    }
  }

  if (canWrite) {
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage();
    });
    submitOnEnter(input, sendMessage);
    stopButton.addEventListener("click", () => send({ type: "stop" }));
    regenerateButton.addEventListener("click", () => {
      showError("");
      send({ type: "regenerate", model: selectedModel() });
    });
  }

  list.querySelectorAll('li.message[data-status="streaming"]').forEach((element) => {
    const id = Number(element.dataset.id);
    received(id, element.querySelector(".message-body").textContent);
    streaming.get(id).shown = streaming.get(id).text.length;
  });
  setBusy();
  window.scrollTo(0, document.body.scrollHeight);
  connect();
})();
