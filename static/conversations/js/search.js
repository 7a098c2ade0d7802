// Search: Ctrl/⌘+K focuses the sidebar's search box; a conversation opened from a result
// (?message=<id>, the server shows that message's branch) scrolls to the message and marks it.
(() => {
  "use strict";

  const box = document.getElementById("sidebar-search-input");
  if (box) {
    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
        event.preventDefault();
        // On a phone the sidebar is closed: open it first (chat.js's toggle), then the box can take the focus.
        if (box.offsetParent === null) document.querySelector(".sidebar-toggle")?.click();
        box.focus();
        box.select();
      }
    });
  }

  const chat = document.getElementById("chat");
  const found = chat?.dataset.foundMessage;
  if (!found) return;
  const element = chat.querySelector(`li.message[data-id="${CSS.escape(found)}"]`);
  if (!element) return;
  element.classList.add("is-found");
  element.setAttribute("tabindex", "-1");
  // After chat.js (loaded before this file) has scrolled to the bottom.
  element.scrollIntoView({ block: "center" });
  element.focus({ preventScroll: true });
})();
