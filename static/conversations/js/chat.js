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

  let closeSidebar = () => false; // true when it closed an open phone sidebar
  let escapeInConversation = () => {}; // the conversation page's: stop a streaming reply

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
    closeSidebar = () => {
      if (!sidebarOpen()) return false;
      setSidebar(false);
      return true;
    };
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

  // Dialogs (Share, Keyboard shortcuts): opened by a button, the Share dialog again after a form in it
  // reloads the page. The browser moves the focus into a modal dialog and closes it on Escape; the focus
  // then goes back to what opened it.
  function openDialog(dialog, opener) {
    if (dialog.open) return;
    dialog.showModal();
    dialog.addEventListener("close", () => opener?.focus(), { once: true });
  }
  document.querySelectorAll("[data-opens]").forEach((button) => {
    const dialog = document.getElementById(button.dataset.opens);
    if (!dialog) return;
    button.addEventListener("click", () => openDialog(dialog, button));
    if (window.location.hash === "#share" && dialog.id === "share-dialog") openDialog(dialog, button);
  });

  // Menus (<details>: Settings, ⋯): the focus goes into one as it opens, Escape closes it back to its summary.
  document.querySelectorAll("details.menu").forEach((menu) => {
    menu.addEventListener("toggle", () => {
      if (menu.open) menu.querySelector(".menu-body :is(a[href], button, input:not([type=hidden]), select, textarea):not([disabled], [hidden])")?.focus();
    });
  });

  // The skip link: the focus, not only the view, goes to the message box (or the page's main part).
  document.querySelector(".skip-link")?.addEventListener("click", (event) => {
    const target = document.getElementById(event.currentTarget.hash.slice(1));
    if (!target) return;
    event.preventDefault();
    if (!target.matches("input, textarea, select, button, a[href], [tabindex]")) {
      // Focusable only while it has the focus: a tap on a focusable page would take it from the phone sidebar.
      target.tabIndex = -1;
      target.addEventListener("blur", () => target.removeAttribute("tabindex"), { once: true });
    }
    target.focus();
  });

  function typingIn(element) {
    return Boolean(element?.closest?.("input, textarea, select, [contenteditable]:not([contenteditable='false'])"));
  }

  // Escape closes what is open, innermost first (a dialog: the browser does it; a menu; the phone sidebar),
  // and only when nothing is open stops a streaming reply. "?" lists the shortcuts when not typing.
  const shortcuts = document.getElementById("shortcuts-dialog");
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    if (event.key === "?" && !event.ctrlKey && !event.metaKey && !event.altKey && shortcuts && !typingIn(event.target)) {
      if (document.querySelector("dialog[open]")) return;
      event.preventDefault();
      openDialog(shortcuts, document.activeElement);
      return;
    }
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    const menu = document.querySelector("details.menu[open]");
    if (menu) {
      event.preventDefault();
      menu.open = false;
      menu.querySelector("summary").focus();
      return;
    }
    if (closeSidebar()) return;
    if (event.target.closest?.("select")) return; // a picker's own Escape closes its list
    escapeInConversation(event);
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
  const replyStatus = document.getElementById("reply-status");

  const socketPath = chat.dataset.socketPath;
  const canWrite = Boolean(composer);
  const showAuthors = chat.dataset.showAuthors === "true";
  const me = chat.dataset.me || "";
  const messageUrl = chat.dataset.messageUrl || ""; // ".../messages/0/": the 0 is a message's id
  const presence = document.getElementById("presence");
  const streaming = new Map(); // reply id -> {text, length (code points), shown (UTF-16 units on screen)}
  let since = Number(chat.dataset.since || 0);
  // The newest message this page has heard of, on any branch. A message newer than that whose parent
  // is on the page is followed (someone sent, edited or regenerated); older ones on other branches
  // only change the "‹ n / m ›" of the versions shown (README, "Versions and branches").
  let newest = Number(chat.dataset.newest || 0);
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

  function displayed(id) {
    return list.querySelector(`li.message[data-id="${id}"]`);
  }

  function shownMessages() {
    return [...list.querySelectorAll("li.message")];
  }

  // Drop what the page shows after `parentId` (null: everything), to show another branch from there.
  function showOnlyUpTo(parentId) {
    const parent = parentId === null || parentId === undefined ? null : displayed(parentId);
    if (parentId !== null && parentId !== undefined && !parent) return false;
    let next = parent ? parent.nextElementSibling : list.firstElementChild;
    while (next) {
      const after = next.nextElementSibling;
      if (next.matches("li.message, li.context-marker")) next.remove();
      next = after;
    }
    return true;
  }

  // Where a message the page does not show yet goes: after its parent when that is the last message
  // shown (the branch grows), or, for a message newer than any the page has heard of, after its parent
  // wherever it is (what follows is another branch now). Null: it is on a branch the page does not show.
  function placeFor({ id, parent_id: parentId }) {
    const known = parentId !== undefined;
    const last = shownMessages().at(-1) || null;
    const lastId = last ? Number(last.dataset.id) : null;
    if (known && (parentId ?? null) === lastId) return "append";
    if (id <= newest) return null;
    if (!known) return "append"; // heard of only by its deltas: the newest branch, as before there were versions
    return showOnlyUpTo(parentId) ? "append" : null;
  }

  // Show the versions of the message under the same parent: "‹ 2 / 3 ›".
  function setVersions(element, versions) {
    if (!versions || !versions.length) return;
    element.dataset.versions = versions.join(",");
    const nav = element.querySelector(".versions");
    if (!nav) return;
    const position = versions.indexOf(Number(element.dataset.id)) + 1;
    nav.hidden = versions.length < 2;
    nav.querySelector(".version-count").textContent = interpolate(
      gettext("%(number)s / %(total)s"), { number: position, total: versions.length }, true,
    );
    nav.querySelector(".version-previous").disabled = position <= 1;
    nav.querySelector(".version-next").disabled = position >= versions.length;
  }

  // Another version of a message the page shows arrived: its siblings' "‹ n / m ›" grows.
  function addVersion(parentId, versions) {
    shownMessages()
      .filter((element) => (element.dataset.parent || null) === (parentId === null ? null : String(parentId)))
      .forEach((element) => setVersions(element, versions));
  }

  function versionsOf(element) {
    return (element.dataset.versions || element.dataset.id).split(",").map(Number);
  }

  function createMessage(id, role, parentId) {
    list.querySelector(".messages-empty")?.remove();
    const element = templatePart("li.message");
    element.querySelectorAll("[hidden]").forEach((part) => {
      if (!part.closest(".message-actions")) part.remove(); // the author and the note: added when there is one
    });
    element.querySelector(".message-actions")?.remove();
    element.classList.add(`message--${role}`);
    element.dataset.id = String(id);
    element.dataset.parent = parentId === null || parentId === undefined ? "" : String(parentId);
    addActions(element);
    list.append(element);
    return element;
  }

  // Where the Copy button gets the message's Markdown source from.
  function prepareActions(element) {
    const copy = element.querySelector(".message-copy");
    if (copy && messageUrl) copy.dataset.sourceUrl = messageUrl.replace(/0\/$/, `${element.dataset.id}/`);
  }

  // The element of a message the page shows or should show now; null when it belongs to another branch.
  function messageElement(id, role, parentId) {
    const element = displayed(id);
    if (element) return element;
    if (!placeFor({ id, parent_id: parentId })) return null;
    return createMessage(id, role, parentId);
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
    const streamingIds = [...streaming.keys()];
    since = streamingIds.length ? Math.min(...streamingIds) : newest + 1;
  }

  function setBusy() {
    const busy = streaming.size > 0;
    chat.classList.toggle("is-busy", busy);
    if (!canWrite) return;
    stopButton.hidden = !busy;
    regenerateButton.hidden = busy || !list.querySelector("li.message");
    list.querySelectorAll(".message-edit, .message-regenerate").forEach((button) => {
      button.disabled = busy;
    });
  }

  // Where the history sent with the latest reply starts, when older messages were left out.
  function markContextStart(firstSentId) {
    list.querySelector(".context-marker")?.remove();
    const first = firstSentId ? list.querySelector(`li.message[data-id="${firstSentId}"]`) : null;
    if (first) list.insertBefore(templatePart(".context-marker"), first);
  }

  // The quiet line on a reply: the model that wrote it, its tokens, and when, in the reader's time zone.
  const timeFormat = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { dateStyle: "short", timeStyle: "short" });
  function setMeta(element, meta) {
    const line = element.querySelector(".message-meta");
    if (!line || !meta) return;
    const parts = meta.model ? [meta.model] : [];
    if (meta.tokens) parts.push(interpolate(ngettext("%s token", "%s tokens", meta.tokens), [meta.tokens.toLocaleString(document.documentElement.lang || undefined)]));
    if (meta.created) parts.push(timeFormat.format(new Date(meta.created)));
    line.textContent = parts.join(" · ");
  }

  // Every message gets a copy of the template's actions: versions, Copy, Edit (your own questions),
  // Regenerate (replies). The page's HTML leaves them out: 1,000 messages render faster without.
  const actionsTemplate = messageTemplate.content.querySelector(".message-actions");
  function addActions(element) {
    if (!actionsTemplate || element.querySelector(".message-actions")) return;
    element.append(actionsTemplate.cloneNode(true));
    const role = element.classList.contains("message--assistant") ? "assistant" : "user";
    element.querySelector(".message-regenerate")?.toggleAttribute("hidden", role !== "assistant");
    setAuthor(element, element.dataset.author);
    prepareActions(element);
    setVersions(element, versionsOf(element));
    if (element.dataset.meta) setMeta(element, JSON.parse(element.dataset.meta));
  }

  function setAuthor(element, author) {
    if (author !== undefined) element.dataset.author = author || "";
    element.querySelector(".message-edit")?.toggleAttribute("hidden", !author || author !== me);
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
      const element = list.querySelector(`li.message[data-id="${id}"]`);
      if (!element) continue; // on a branch this page does not show
      const body = element.querySelector(".message-body");
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

  // --- screen readers: a reply is announced by whole sentences ---------------------------------
  // The message list is no live region (a screen reader would read it per token, or all of it again):
  // #reply-status, a polite status region, gets the sentences a reply completes, at most every
  // ANNOUNCE_EVERY ms, then how it ended. Markdown marks and code blocks are left out of what is read.
  const ANNOUNCE_EVERY = 1500;
  const SENTENCE_END = /[.!?…]+["'”’)\]]*(?=\s)|[。！？]+["'”’）」]*|\n+/g;
  const announced = new Map(); // reply id -> how much of its speakable text was announced
  let announceTimer = null;
  let lastAnnounced = 0;

  function speakable(markdown) {
    return markdown
      .replace(/```[\s\S]*?(```|$)/g, "\n")
      .replace(/^[ \t]{0,3}(#{1,6}|>|[-*+]|\d+[.)])[ \t]+/gm, "")
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .replace(/[*_~`]+/g, "");
  }

  function sentencesEnd(text, from) {
    let end = from;
    SENTENCE_END.lastIndex = from;
    for (const match of text.matchAll(SENTENCE_END)) {
      if (match.index >= from) end = match.index + match[0].length;
    }
    return end;
  }

  function say(text) {
    if (!replyStatus || !text) return;
    replyStatus.textContent = text;
    lastAnnounced = Date.now();
  }

  function announceSentences() {
    announceTimer = null;
    for (const [id, reply] of streaming) {
      if (!displayed(id)) continue;
      const text = speakable(reply.text);
      const from = announced.get(id) ?? 0;
      const end = sentencesEnd(text, from);
      if (end > from) {
        announced.set(id, end);
        say(text.slice(from, end).replace(/\s+/g, " ").trim());
      }
    }
  }

  function queueAnnouncement() {
    if (!announceTimer) announceTimer = setTimeout(announceSentences, Math.max(0, lastAnnounced + ANNOUNCE_EVERY - Date.now()));
  }

  // The reply ended: the rest of it, then how it ended (the note under it says why it failed or was cut off).
  function announceEnd(id, text, { status, note }) {
    const from = announced.get(id);
    announced.delete(id);
    if (from === undefined) return; // not streamed on this page: nothing to finish
    const rest = speakable(text).slice(from).replace(/\s+/g, " ").trim();
    const ending = {
      complete: gettext("Reply finished."),
      stopped: gettext("Reply stopped."),
      error: interpolate(gettext("The reply failed: %s"), [note || ""]),
    }[status] || "";
    say([rest, ending].filter(Boolean).join(" "));
  }

  const handlers = {
    message({ message }) {
      const wasNearBottom = nearBottom();
      const element = messageElement(message.id, message.role, message.parent_id);
      newest = Math.max(newest, message.id);
      if (message.versions) addVersion(message.parent_id ?? null, message.versions);
      if (!element) {
        if (message.status !== "streaming") streaming.delete(message.id);
        return; // on a branch this page does not show
      }
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
          if (!announced.has(message.id)) announced.set(message.id, speakable(message.content).length); // from here on
        }
      }
      setMeta(element, message.meta);
      if (message.role === "user") awaitingReply = false;
      keepScrolled(wasNearBottom);
    },
    start({ message_id: id, parent_id: parentId, versions, context_start: contextStart }) {
      const wasNearBottom = nearBottom();
      const element = messageElement(id, "assistant", parentId);
      newest = Math.max(newest, id);
      if (versions) addVersion(parentId ?? null, versions);
      if (!streaming.has(id)) received(id, "");
      if (!announced.has(id)) announced.set(id, 0);
      if (!element) return;
      markContextStart(contextStart);
      setStatus(element, "streaming");
      awaitingReply = false;
      keepScrolled(wasNearBottom);
    },
    delta({ message_id: id, offset, content }) {
      const reply = streaming.get(id) ?? { text: "", length: 0, shown: 0 };
      if (offset !== reply.length) return; // the server sends each socket contiguous text; never garble
      const element = messageElement(id, "assistant");
      newest = Math.max(newest, id);
      if (element) setStatus(element, "streaming");
      received(id, reply.text + content);
      scheduleReveal();
      if (announced.has(id)) queueAnnouncement();
    },
    done(frame) {
      const wasNearBottom = nearBottom();
      const text = streaming.get(frame.message_id)?.text ?? "";
      streaming.delete(frame.message_id);
      const element = displayed(frame.message_id);
      if (!element) return;
      announceEnd(frame.message_id, text, frame);
      showFinal(element, frame);
      setMeta(element, frame.meta);
      keepScrolled(wasNearBottom);
    },
    branch({ parent_id: parentId }) {
      // The answer to this page's choice of a version: its messages follow, from `parentId` down.
      showOnlyUpTo(parentId);
      showError("");
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
    title(frame) {
      // A model titled the conversation: sidebar.js shows it in the heading, the tab and the sidebar.
      document.dispatchEvent(new CustomEvent("chat:title", { detail: frame }));
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
      // A frame that fails to show is reported and the next ones still are (a rejected chain would stop them all).
      handling = handling
        .then(() => whole(frame))
        .then(handle, () => showError(LOAD_FAILED))
        .catch((error) => console.error("A frame could not be shown", frame.type, error));
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

  // What you see is what you answer: a send follows the last message this page shows.
  function lastShownId() {
    const last = shownMessages().at(-1);
    return last ? Number(last.dataset.id) : null;
  }

  function sendMessage() {
    const content = input.value;
    if (!content.trim() || streaming.size > 0) return;
    showError("");
    const frame = { type: "send", content, model: selectedModel() };
    const parentId = lastShownId();
    if (parentId !== null) frame.parent_id = parentId;
    if (send(frame)) {
      lastDraft = content;
      input.value = "";
    }
  }

  function regenerate(messageId) {
    showError("");
    const frame = { type: "regenerate", model: selectedModel() };
    if (messageId) frame.message_id = messageId;
    send(frame);
  }

  // Editing a question: an editor in place of its text; Save sends the new text as another version
  // of it (a sibling after the same parent), Cancel puts the text back.
  const editTemplate = document.getElementById("edit-template");
  function openEditor(element) {
    if (element.querySelector(".message-editor") || !editTemplate) return;
    const body = element.querySelector(".message-body");
    const editor = editTemplate.content.firstElementChild.cloneNode(true);
    const textarea = editor.querySelector("textarea");
    textarea.value = body.textContent;
    body.hidden = true;
    body.after(editor);
    textarea.focus();
    const close = () => {
      editor.remove();
      body.hidden = false;
    };
    const save = () => {
      const content = textarea.value;
      if (!content.trim() || streaming.size > 0) return;
      const parent = element.dataset.parent;
      if (send({ type: "send", content, model: selectedModel(), parent_id: parent ? Number(parent) : null })) close();
    };
    editor.addEventListener("submit", (event) => {
      event.preventDefault();
      save();
    });
    editor.querySelector(".edit-cancel").addEventListener("click", close);
    submitOnEnter(textarea, save);
  }

  // The buttons on each message: versions, edit, regenerate (copying is render.js's).
  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    const element = button?.closest("li.message");
    if (!element) return;
    const id = Number(element.dataset.id);
    if (button.matches(".version-previous, .version-next")) {
      const versions = versionsOf(element);
      const other = versions[versions.indexOf(id) + (button.matches(".version-next") ? 1 : -1)];
      if (other) send({ type: "select", message_id: other });
    } else if (button.matches(".message-edit") && canWrite) {
      openEditor(element);
    } else if (button.matches(".message-regenerate") && canWrite) {
      regenerate(id);
    }
  });

  if (canWrite) {
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage();
    });
    submitOnEnter(input, sendMessage);
    stopButton.addEventListener("click", () => send({ type: "stop" }));
    // Escape in the editor of a question cancels the edit; elsewhere it stops a streaming reply.
    escapeInConversation = (event) => {
      const editor = event.target.closest?.(".message-editor");
      if (editor) {
        const element = editor.closest("li.message");
        editor.querySelector(".edit-cancel").click();
        element?.querySelector(".message-edit")?.focus();
        return;
      }
      if (streaming.size > 0 && !stopButton.hidden) {
        event.preventDefault();
        send({ type: "stop" });
      }
    };
    regenerateButton.addEventListener("click", () => {
      // The last reply this page shows, or an answer to its last question.
      const last = shownMessages().at(-1);
      regenerate(last && last.classList.contains("message--assistant") ? Number(last.dataset.id) : null);
    });
  }

  shownMessages().forEach(addActions);
  list.querySelectorAll('li.message[data-status="streaming"]').forEach((element) => {
    const id = Number(element.dataset.id);
    received(id, element.querySelector(".message-body").textContent);
    streaming.get(id).shown = streaming.get(id).text.length;
    announced.set(id, speakable(streaming.get(id).text).length); // what was there before the page: not read out
  });
  setBusy();
  window.scrollTo(0, document.body.scrollHeight);
  connect();
})();
