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

  // --- the browser's time zone, for the date groups -------------------------------------------
  // The server groups by the server's time zone until it knows the reader's; the next page uses this.
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && !document.cookie.split("; ").includes(`tz=${encodeURIComponent(zone)}`)) {
      document.cookie = `tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; samesite=lax`;
    }
  } catch (error) {
    // No Intl time zone: the server's stays.
  }

  // --- more as the list is scrolled -----------------------------------------------------------
  // Each list (yours, shared with you) says where its next page is (data-more); a sentinel after it
  // loads that page when it comes near the view. The server sends the items already escaped.
  function followMore(list) {
    const sentinel = document.createElement("li");
    sentinel.className = "sidebar-sentinel";
    sentinel.setAttribute("aria-hidden", "true");
    list.append(sentinel);
    let loading = false;
    const observer = new IntersectionObserver(async (entries) => {
      if (loading || !entries.some((entry) => entry.isIntersecting) || !list.dataset.more) return;
      loading = true;
      try {
        const response = await fetch(list.dataset.more, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const page = await response.json();
        sentinel.insertAdjacentHTML("beforebegin", page.html);
        if (page.more) list.dataset.more = page.more;
        else {
          delete list.dataset.more;
          observer.disconnect();
          sentinel.remove();
        }
      } catch (error) {
        console.error("More conversations could not be loaded", error);
      } finally {
        loading = false;
      }
      // Still in view (a tall screen): ask for the next page too.
      if (list.dataset.more) {
        observer.unobserve(sentinel);
        observer.observe(sentinel);
      }
    }, { root: document.getElementById("sidebar-list"), rootMargin: "0px 0px 300px 0px" });
    observer.observe(sentinel);
  }
  document.querySelectorAll(".sidebar-items[data-more]").forEach(followMore);

  // --- several at once --------------------------------------------------------------------------
  const sidebar = document.getElementById("sidebar");
  const selectButton = document.getElementById("sidebar-select");
  if (sidebar && selectButton) {
    selectButton.addEventListener("click", () => {
      const selecting = sidebar.classList.toggle("is-selecting");
      selectButton.setAttribute("aria-pressed", String(selecting));
      selectButton.textContent = selecting ? gettext("Cancel") : gettext("Select");
      if (!selecting) sidebar.querySelectorAll(".sidebar-check").forEach((box) => { box.checked = false; });
    });
  }
  // Deleting asks first; archiving can be undone from the Archived page, so it does not.
  document.querySelectorAll("form[data-confirm-delete]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (event.submitter?.value === "delete" && !window.confirm(form.dataset.confirmDelete)) event.preventDefault();
    });
  });
})();
