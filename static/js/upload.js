// Upload forms (data-progress holds what the server does after the upload): the file is sent with
// XMLHttpRequest so the page can show how much has gone up, then that the server is working on it. The
// server's answer replaces the page as a normal submit would (its messages and field errors included), and
// the address follows a redirect. The button stays disabled meanwhile, so nothing is sent twice.
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
    if (event.defaultPrevented) return;
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.href);
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
      if (url && url !== window.location.href) history.replaceState(null, "", url);
    });
    request.addEventListener("error", () => {
      show("The upload did not reach the server: check the connection and try again.", 0);
      button.disabled = false;
    });
    button.disabled = true;
    show("Uploading…", 0);
    request.send(new FormData(form));
  });
});
