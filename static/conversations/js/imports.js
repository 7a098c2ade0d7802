// The Import page: each unfinished import's progress, from its status URL once a second, until it ends.
// Everything from the file (names, titles, reasons) is put in as text (textContent), never as HTML. The
// wording is the template's (_import_job.html), in the same translatable strings. When an import this page
// watched ends having imported something, the page reloads, so the sidebar lists the new conversations.
(() => {
  "use strict";

  // Django's JavaScript catalog (/jsi18n/) defines these.
  const gettext = window.gettext || ((text) => text);
  const interpolate = window.interpolate || ((format, values) => format.replace(/%\((\w+)\)s/g, (_, key) => String(values[key])));
  const POLL_MS = 1000;

  function stateText(job) {
    if (job.status === "queued") return gettext("Waiting to start…");
    if (job.status === "running") {
      return job.total ? interpolate(gettext("%(processed)s of %(total)s conversations"), job, true) : gettext("Reading the file…");
    }
    if (job.status === "done") return gettext("Done.");
    return null;
  }

  function show(item, job) {
    item.dataset.status = job.status;
    const progress = item.querySelector(".import-progress");
    progress.max = Math.max(job.total, 1);
    progress.value = job.processed;
    progress.hidden = job.finished;

    const state = item.querySelector(".import-state");
    const text = stateText(job);
    if (text === null) {
      const error = document.createElement("span");
      error.className = "import-error";
      error.textContent = `${gettext("Failed:")} ${job.error}`;
      state.replaceChildren(error);
    } else {
      state.textContent = text;
    }

    const summary = item.querySelector(".import-summary");
    summary.hidden = !job.finished || (job.status === "failed" && !job.processed);
    summary.textContent = interpolate(
      gettext("Imported: %(imported)s. Skipped (imported before): %(skipped)s. Not imported: %(failed)s."), job, true,
    );

    const failures = item.querySelector(".import-failures");
    failures.hidden = !job.failures.length;
    failures.querySelector("ul").replaceChildren(...job.failures.map((failure) => {
      const line = document.createElement("li");
      const title = document.createElement("strong");
      title.textContent = failure.title;
      line.append(title, `: ${failure.reason}`);
      return line;
    }));
  }

  function watch(item) {
    const poll = async () => {
      let job;
      try {
        const response = await fetch(item.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (response.status === 404) return; // not this person's any more (logged out as someone else)
        if (!response.ok) throw new Error(`status ${response.status}`);
        job = await response.json();
      } catch {
        item.querySelector(".import-state").textContent = gettext("Cannot reach the server; trying again…");
        window.setTimeout(poll, POLL_MS * 3);
        return;
      }
      show(item, job);
      if (!job.finished) {
        window.setTimeout(poll, POLL_MS);
      } else if (job.imported > 0) {
        window.location.reload();
      }
    };
    window.setTimeout(poll, POLL_MS / 2);
  }

  document.querySelectorAll('.import-job[data-status="queued"], .import-job[data-status="running"]').forEach(watch);
})();
