// The sidebar: a model-written title shown live, more conversations loaded as the list is scrolled,
// and "Select" for archiving or deleting several at once. chat.js owns the conversation page's socket;
// it hands `title` frames over as a "chat:title" event.
(function () {
  "use strict";

  // --- a model's title, live --------------------------------------------------------------
  document.addEventListener("chat:title", (event) => {
    const title = event.detail.title;
    const chat = document.getElementById("chat");
    const heading = document.getElementById("conversation-title");
    if (heading) heading.textContent = title;
    document.title = interpolate(gettext("%s · Team Chat"), [title]);
    if (!chat) return;
    const id = chat.dataset.conversationId;
    document.querySelectorAll(`.sidebar-list a[data-conversation="${CSS.escape(id)}"] .sidebar-title`).forEach((label) => {
      label.textContent = title; // textContent: a title is plain text, never markup
    });
  });
})();
