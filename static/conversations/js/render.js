// Markdown in the browser while a reply streams, and Copy buttons for code blocks and whole messages.
//
// window.chatRender.markdown(element, text) shows a streaming reply's text as Markdown: rendered by
// markdown-it, configured like the server's renderer, then sanitised by DOMPurify with the server's
// allow-list. The reply's `done` frame then replaces it with the server's own HTML (chat.js), which
// stays the only rendering that is saved or shown after the stream. Model output is untrusted, so
// what this file lets through must never be more than what conversations/rendering.py lets through:
// THE RENDERER AND THE ALLOW-LIST BELOW MUST STAY IN STEP WITH conversations/rendering.py.
//
// window.chatRender.enhance(root) adds a Copy button to every code block of the messages under `root`
// (idempotent). A click on a `button.message-copy` copies that message's Markdown source.
//
// Loaded deferred after the vendored markdown-it and DOMPurify (static/conversations/vendor/) and the
// JavaScript catalog (/jsi18n/), and before chat.js, which uses window.chatRender when it is there.
(() => {
  "use strict";

  // Every string a person reads is translated: Django's JavaScript catalog (/jsi18n/) defines these.
  const gettext = window.gettext || ((text) => text);
  const interpolate = window.interpolate || ((format, values) => values.reduce((text, value) => text.replace("%s", value), format));

  // --- the allow-list: the server's nh3 Cleaner (conversations/rendering.py), in DOMPurify's terms ---

  const TAGS = [
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "span", "button",
    "sup", "sub",
  ];
  // Attributes per tag, as the Cleaner's `attributes`; DOMPurify's own list is for every tag, so a hook
  // (below) holds each tag to its own.
  const ATTRIBUTES = {
    a: ["href", "title"],
    ol: ["start"],
    code: ["class"],
    pre: ["class"],
    span: ["class"],
    th: ["class"],
    td: ["class"],
    button: ["type", "class", "data-src", "title"],
  };
  // nh3 (ammonia) also allows these on every tag unless told otherwise.
  const GENERIC_ATTRIBUTES = ["lang", "title"];
  // The Cleaner's url_schemes: http, https and mailto; relative URLs pass, as ammonia passes them.
  // (DOMPurify's default expression with only those schemes; DOMPurify tests every attribute that is
  // not known to be inert against it, so data-src is held to it too.)
  const URL_SCHEMES = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.\-]+(?:[^a-z+.\-:]|$))/i;
  // The Cleaner's link_rel: every link gets it, whatever rel it had; target is not allowed at all.
  const LINK_REL = "noopener noreferrer nofollow";
  // The content of removed <script> and <style> goes with them (clean_content_tags): DOMPurify's
  // default list of such tags has both, and a few more that markdown-it never emits with html off.

  const allowedAttributes = new Map(
    Object.entries(ATTRIBUTES).map(([tag, names]) => [tag, new Set([...names, ...GENERIC_ATTRIBUTES])]),
  );
  const genericAttributes = new Set(GENERIC_ATTRIBUTES);

  const purify = window.DOMPurify ? window.DOMPurify(window) : null; // an instance of our own: its hooks are ours only
  if (purify) {
    purify.setConfig({
      ALLOWED_TAGS: TAGS,
      ALLOWED_ATTR: [...new Set([...Object.values(ATTRIBUTES).flat(), ...GENERIC_ATTRIBUTES])],
      ALLOW_DATA_ATTR: false,
      ALLOW_ARIA_ATTR: false,
      ALLOWED_URI_REGEXP: URL_SCHEMES,
    });
    purify.addHook("uponSanitizeAttribute", (node, data) => {
      const allowed = allowedAttributes.get(node.nodeName.toLowerCase()) ?? genericAttributes;
      if (!allowed.has(data.attrName)) data.keepAttr = false;
    });
    purify.addHook("afterSanitizeAttributes", (node) => {
      if (node.nodeName === "A") node.setAttribute("rel", LINK_REL);
    });
  }

  // --- the renderer: conversations/rendering.py's, without syntax highlighting ---------------------

  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" };
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (character) => ESCAPES[character]);

  // _highlight: a fenced block with its language as a label and a class, the code escaped (the server
  // also colours it with Pygments).
  function codeBlock(code, lang) {
    const name = lang.trim() ? lang.trim().split(/\s+/)[0].toLowerCase() : "";
    const cssName = [...name].filter((character) => /[\p{L}\p{N}+\-_#.]/u.test(character)).join("");
    const language = cssName ? ` class="language-${cssName}"` : "";
    const label = cssName ? `<span class="code-lang">${escapeHtml(cssName)}</span>` : "";
    return `<pre class="highlight">${label}<code${language}>${escapeHtml(code)}</code></pre>\n`;
  }

  // Python's urlsplit, as far as _render_image uses it: the scheme and the host, or null.
  function splitUrl(url) {
    const match = /^([a-z][a-z0-9+.-]*):(?:\/\/([^/?#]*))?/i.exec(url);
    if (!match) return null;
    const netloc = match[2] ?? "";
    const hostinfo = netloc.slice(netloc.lastIndexOf("@") + 1);
    const hostname = hostinfo.startsWith("[") ? hostinfo.slice(1).split("]")[0] : hostinfo.split(":")[0];
    return { scheme: match[1].toLowerCase(), netloc, hostname: hostname.toLowerCase() };
  }

  // _render_image: an image from elsewhere is a button that loads it on a click (chat.js), so merely
  // reading a reply sends no request to another site; anything else is its alt text.
  function image(tokens, index) {
    const token = tokens[index];
    const src = token.attrGet("src") || "";
    const alt = (token.children || []).map((child) => child.content).join("");
    const parts = splitUrl(src);
    if (!parts || !["http", "https"].includes(parts.scheme) || !parts.netloc) return escapeHtml(alt);
    // The server's words (not translated there yet: keep the two in step when it is).
    const label = interpolate(gettext("Show image from %s"), [parts.hostname]) + (alt ? `: ${alt}` : "");
    return (
      `<button type="button" class="remote-image" data-src="${escapeHtml(src)}" title="${escapeHtml(src)}">` +
      `${escapeHtml(label)}</button>`
    );
  }

  const markdownIt = window.markdownit
    ? window.markdownit("commonmark", { html: false, highlight: codeBlock }).enable(["table", "strikethrough"])
    : null;
  if (markdownIt) markdownIt.renderer.rules.image = image;

  // Alignment arrives as inline styles, which the page's CSP forbids; classes do the same job.
  const ALIGN = { "text-align:left": "align-left", "text-align:center": "align-center", "text-align:right": "align-right" };

  function toSafeHtml(text) {
    const env = {};
    const tokens = markdownIt.parse(text, env);
    for (const token of tokens) {
      if ((token.type === "th_open" || token.type === "td_open") && token.attrGet("style")) {
        token.attrs = [["class", ALIGN[token.attrGet("style")] ?? ""]];
      }
    }
    return purify.sanitize(markdownIt.renderer.render(tokens, markdownIt.options, env));
  }

  // A reply of a few thousand characters renders in about a millisecond, so chat.js may call this on
  // every animation frame. Past LONG_TEXT characters a render costs more than a frame: the element is
  // then rendered at most every LONG_TEXT_INTERVAL ms, with the latest text it was given.
  const LONG_TEXT = 20000;
  const LONG_TEXT_INTERVAL = 250;
  const renders = new WeakMap(); // element -> {renderedAt, shown (its first node then), text, timer}

  function renderNow(element, text, state) {
    clearTimeout(state.timer);
    state.timer = null;
    state.text = null;
    element.innerHTML = toSafeHtml(text); // sanitised just above, with the server's allow-list
    state.renderedAt = performance.now();
    state.shown = element.firstChild;
  }

  function renderLater(element) {
    const state = renders.get(element);
    state.timer = null;
    // Something else has replaced what was rendered meanwhile (the server's HTML at `done`): it stays.
    if (!element.isConnected || element.firstChild !== state.shown || state.text === null) return;
    renderNow(element, state.text, state);
  }

  function markdown(element, text) {
    if (!markdownIt || !purify || !purify.isSupported) {
      element.textContent = text; // without the renderer (a file did not load), the text as text
      return;
    }
    let state = renders.get(element);
    if (!state) {
      state = { renderedAt: -Infinity, shown: null, text: null, timer: null };
      renders.set(element, state);
    }
    const wait = state.renderedAt + LONG_TEXT_INTERVAL - performance.now();
    if (text.length > LONG_TEXT && wait > 0) {
      state.text = text;
      state.timer ??= setTimeout(() => renderLater(element), wait);
      return;
    }
    renderNow(element, text, state);
  }

  // --- copying -------------------------------------------------------------------------------------

  const COPY = gettext("Copy");
  const COPY_CODE = gettext("Copy code");
  const COPIED = gettext("Copied");
  const COPY_FAILED = gettext("Could not copy");
  const FEEDBACK_MS = 1500;

  // Without the Clipboard API (an http:// page that is not localhost, an old browser): a hidden
  // textarea, selected, and the old copy command.
  function copyWithSelection(text) {
    const buffer = document.createElement("textarea");
    buffer.value = text;
    buffer.readOnly = true;
    buffer.tabIndex = -1;
    buffer.className = "copy-buffer";
    buffer.setAttribute("aria-hidden", "true");
    const focused = document.activeElement;
    document.body.append(buffer);
    buffer.select();
    buffer.setSelectionRange(0, text.length);
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    buffer.remove();
    focused?.focus?.({ preventScroll: true });
    return copied;
  }

  // `source` is the text, or a promise of it (a message's source still being fetched). A promise is
  // handed to the clipboard at once, inside the click, as Safari requires; the text is written when
  // it arrives.
  async function copyText(source) {
    const clipboard = navigator.clipboard;
    if (typeof source !== "string" && clipboard?.write && window.ClipboardItem) {
      try {
        const blob = Promise.resolve(source).then((text) => new Blob([text], { type: "text/plain" }));
        await clipboard.write([new ClipboardItem({ "text/plain": blob })]);
        return;
      } catch {
        // Written below, once the text is here (and thrown from there if it never comes).
      }
    }
    const text = await source;
    if (clipboard?.writeText) {
      try {
        await clipboard.writeText(text);
        return;
      } catch {
        // The selection may still work (a browser that refuses the API here).
      }
    }
    if (!copyWithSelection(text)) throw new Error("copy refused");
  }

  // A status line screen readers announce (the button's own label changes too, for the eye).
  let announcer = null;
  function announce(text) {
    if (!announcer) {
      announcer = document.createElement("span");
      announcer.className = "visually-hidden";
      announcer.setAttribute("role", "status");
      document.body.append(announcer);
    }
    announcer.textContent = "";
    window.setTimeout(() => {
      announcer.textContent = text;
    }, 50);
  }

  // "Copied" (or "Could not copy") on the button for a moment, then what it said before.
  const feedback = new WeakMap();
  function showFeedback(button, text) {
    let saved = feedback.get(button);
    if (!saved) {
      saved = { nodes: [...button.childNodes], label: button.getAttribute("aria-label"), timer: null };
      feedback.set(button, saved);
    }
    button.replaceChildren(text);
    if (saved.label !== null) button.setAttribute("aria-label", text);
    button.classList.add("is-copied");
    announce(text);
    clearTimeout(saved.timer);
    saved.timer = setTimeout(() => {
      button.replaceChildren(...saved.nodes);
      if (saved.label !== null) button.setAttribute("aria-label", saved.label);
      button.classList.remove("is-copied");
      feedback.delete(button);
    }, FEEDBACK_MS);
  }

  async function copyFrom(button, source) {
    try {
      await copyText(source);
      showFeedback(button, COPIED);
    } catch {
      showFeedback(button, COPY_FAILED);
    }
  }

  // A code block's code: its <code> element's text, without the language label or the button.
  function codeOf(pre) {
    const code = pre.querySelector("code");
    if (code) return code.textContent.replace(/\n$/, "");
    const copy = pre.cloneNode(true);
    copy.querySelectorAll(".code-copy, .code-lang").forEach((part) => part.remove());
    return copy.textContent.replace(/\n$/, "");
  }

  // A message's Markdown source, from the page's own JSON of it (the route chat.js fetches long
  // replies from); the text shown when the button says nowhere to get it.
  async function sourceOf(button) {
    const url = button.dataset.sourceUrl ? new URL(button.dataset.sourceUrl, window.location.href) : null;
    if (url) {
      if (url.origin !== window.location.origin) throw new Error(`not this site's address: ${url}`);
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`${response.status} fetching ${url}`);
      const { content } = await response.json();
      if (typeof content !== "string") throw new Error(`no content at ${url}`);
      return content;
    }
    const body = button.closest("li.message")?.querySelector(".message-body");
    if (!body) throw new Error("no message to copy");
    const copy = body.cloneNode(true);
    copy.querySelectorAll(".code-copy, .code-lang").forEach((part) => part.remove());
    return copy.textContent.trim();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest?.("button.code-copy, button.message-copy");
    if (!button) return;
    if (button.classList.contains("code-copy")) {
      const pre = button.closest("pre");
      if (pre) copyFrom(button, codeOf(pre));
    } else {
      copyFrom(button, sourceOf(button));
    }
  });

  // --- enhancing rendered messages -----------------------------------------------------------------

  function enhance(root) {
    for (const pre of root.querySelectorAll(".message-body pre")) {
      if (pre.querySelector(":scope > .code-copy")) continue;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "code-copy";
      button.textContent = COPY;
      button.setAttribute("aria-label", COPY_CODE);
      pre.append(button);
    }
    // A render still waiting for its turn must not overwrite what is here now.
    const bodies = [...root.querySelectorAll(".message-body")];
    if (root.matches?.(".message-body")) bodies.push(root);
    for (const body of bodies) {
      const state = renders.get(body);
      if (state) {
        clearTimeout(state.timer);
        state.timer = null;
        state.text = null;
      }
    }
  }

  window.chatRender = Object.freeze({ markdown, enhance });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => enhance(document));
  } else {
    enhance(document);
  }
})();
