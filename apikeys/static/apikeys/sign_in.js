// Sign-in and account creation happen in the browser with the Firebase web SDK;
// the server then receives the resulting ID token, verifies it and opens a session.
// Firebase keeps its own state in memory only, so signing out of this site leaves
// nothing behind in the browser.
import { initializeApp } from "firebase/app";
import {
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  inMemoryPersistence,
  initializeAuth,
  signInWithEmailAndPassword,
} from "firebase/auth";

// Each Firebase error's message, and the fields it is about: those are marked invalid and
// described by the message (WCAG 3.3.1), and the first of them takes the focus.
const EMAIL = ["email"];
const PASSWORD = ["password"];
const BOTH = ["email", "password"];
const MESSAGES = {
  "auth/invalid-credential": ["That email and password do not match an account.", BOTH],
  "auth/wrong-password": ["That email and password do not match an account.", BOTH],
  "auth/user-not-found": ["That email and password do not match an account.", BOTH],
  "auth/invalid-email": ["Enter a valid email address.", EMAIL],
  "auth/missing-email": ["Enter your email address.", EMAIL],
  "auth/missing-password": ["Enter your password.", PASSWORD],
  "auth/user-disabled": ["This account has been disabled. Contact support if you think this is a mistake.", []],
  "auth/email-already-in-use": ["There is already an account with this email. Sign in instead.", EMAIL],
  "auth/weak-password": ["Choose a password of at least 6 characters.", PASSWORD],
  "auth/too-many-requests": ["Too many attempts. Wait a few minutes and try again.", []],
  "auth/network-request-failed": ["Could not reach the sign-in service. Check your connection and try again.", []],
};
const UNKNOWN = ["Sign-in failed. Please try again.", []];

const config = JSON.parse(document.getElementById("firebase-config").textContent);
const form = document.getElementById("auth-form");
const errorBox = document.getElementById("auth-error");
const submit = document.getElementById("auth-submit");

function describedBy(field) {
  return (field.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && id !== errorBox.id);
}

function clearError() {
  errorBox.hidden = true;
  for (const field of form.querySelectorAll("input")) {
    field.removeAttribute("aria-invalid");
    const ids = describedBy(field);
    if (ids.length) field.setAttribute("aria-describedby", ids.join(" "));
    else field.removeAttribute("aria-describedby");
  }
}

function showError([message, names]) {
  clearError();
  errorBox.textContent = message;
  errorBox.hidden = false;
  const fields = names.map((name) => form.elements[name]);
  for (const field of fields) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", [...describedBy(field), errorBox.id].join(" "));
  }
  (fields[0] || errorBox).focus?.();
}

if (form) {
  const app = initializeApp({ apiKey: config.apiKey, authDomain: config.authDomain, projectId: config.projectId });
  const auth = initializeAuth(app, { persistence: inMemoryPersistence });
  if (config.emulatorUrl) {
    connectAuthEmulator(auth, config.emulatorUrl, { disableWarnings: true });
  }
  const signingUp = form.dataset.mode === "signup";
  const idleLabel = submit.textContent;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = form.email.value.trim();
    const password = form.password.value;
    if (!email) return showError(MESSAGES["auth/missing-email"]);
    if (!password) return showError(MESSAGES["auth/missing-password"]);
    if (signingUp && password.length < 6) return showError(MESSAGES["auth/weak-password"]);
    clearError();
    submit.disabled = true;
    submit.textContent = signingUp ? "Creating account…" : "Signing in…";
    try {
      const credential = signingUp
        ? await createUserWithEmailAndPassword(auth, email, password)
        : await signInWithEmailAndPassword(auth, email, password);
      document.getElementById("id_token").value = await credential.user.getIdToken();
      document.getElementById("session-form").submit();
    } catch (error) {
      showError(MESSAGES[error.code] || UNKNOWN);
      submit.disabled = false;
      submit.textContent = idleLabel;
    }
  });
}
