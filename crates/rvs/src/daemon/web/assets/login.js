// The login form: POST /api/v1/login, then the console.
"use strict";
document.getElementById("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = document.getElementById("login-error");
  err.textContent = "";
  try {
    const r = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      }),
    });
    const body = await r.json();
    if (!r.ok) { err.textContent = body.error || ("login failed: " + r.status); return; }
    window.location.replace("/");
  } catch (x) {
    err.textContent = "cannot reach rvsd: " + x;
  }
});
