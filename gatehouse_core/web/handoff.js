// GateHouse: trade the one-time sign-in ticket for the HttpOnly session cookie, or clear it
// on sign-out. Loaded from this origin by the page (no inline script, so the CSP stays strict).
(function () {
  document.querySelectorAll("[data-gh-ticket]").forEach(function (el) {
    var ticket = el.getAttribute("data-gh-ticket");
    el.removeAttribute("data-gh-ticket");
    fetch("/auth/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ticket: ticket }),
    }).then(function (r) { el.setAttribute("data-gh-done", r.ok ? "ok" : "refused"); });
  });
  document.querySelectorAll("[data-gh-signout]").forEach(function (el) {
    el.removeAttribute("data-gh-signout");
    fetch("/auth/signout", { method: "POST", credentials: "same-origin" })
      .then(function () { el.setAttribute("data-gh-done", "ok"); });
  });
})();
