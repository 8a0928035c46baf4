// Upload forms (data-progress holds what the server does after the upload): the file is sent with
// XMLHttpRequest so the page can show how much has gone up, then that the server is working on it. The
// server's answer replaces the page as a normal submit would (its messages and field errors included), and
// the address follows a redirect. The button stays disabled meanwhile, so nothing is sent twice.
// The page the server answers with is written into this same window and runs this file again: nothing here
// may be a global declaration (a second `const` would throw), so it all lives in one function.
(() => {
const canShowProgress = "upload" in XMLHttpRequest.prototype; // else the form is sent the usual way

document.querySelectorAll("form[data-progress]").forEach((form) => {
  const box = form.querySelector(".upload-progress");
  const bar = box.querySelector("progress");
  const label = box.querySelector(".upload-progress-label");
  const button = form.querySelector('button[type="submit"]');

  function show(text, fraction) {
    box.hidden = false;
    label.textContent = text;
    if (fraction === null) bar.removeAttribute("value"); // indeterminate: the server is working
    else bar.value = fraction;
  }

  form.addEventListener("submit", (event) => {
    if (event.defaultPrevented || !canShowProgress) return;
    event.preventDefault();
    // Over the server's limit: say so now (the server would cut the connection, which reads as "offline").
    const limit = Number(form.dataset.maxBytes) || 0;
    const bytes = [...form.querySelectorAll('input[type="file"]')]
      .reduce((sum, input) => sum + [...input.files].reduce((n, file) => n + file.size, 0), 0);
    if (limit && bytes > limit) {
      show(`These files are ${Math.ceil(bytes / 1048576)} MB together; the limit is ${Math.floor(limit / 1048576)} MB.`, 0);
      return;
    }
    const action = new URL(form.action || window.location.href, window.location.href).href;
    const request = new XMLHttpRequest();
    request.open("POST", action);
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) show(`Uploading… ${Math.round((100 * e.loaded) / e.total)}%`, e.loaded / e.total);
    });
    request.upload.addEventListener("load", () => show(form.dataset.progress, null));
    request.addEventListener("load", () => {
      const html = request.responseText;
      const url = request.responseURL;
      document.open();
      document.write(html);
      document.close();
      // Follow a redirect only: a refused upload's page stays at the form's address, which a reload can GET.
      if (url && url !== action && request.status < 400) history.replaceState(null, "", url);
    });
    for (const kind of ["error", "abort", "timeout"]) {
      request.addEventListener(kind, () => {
        show("The upload did not reach the server: check the connection and try again.", 0);
        button.disabled = false;
      });
    }
    button.disabled = true;
    show("Uploading…", 0);
    request.send(new FormData(form));
  });
});
})();
