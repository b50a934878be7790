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

const MESSAGES = {
  "auth/invalid-credential": "That email and password do not match an account.",
  "auth/wrong-password": "That email and password do not match an account.",
  "auth/user-not-found": "That email and password do not match an account.",
  "auth/invalid-email": "Enter a valid email address.",
  "auth/missing-password": "Enter your password.",
  "auth/user-disabled": "This account has been disabled. Contact support if you think this is a mistake.",
  "auth/email-already-in-use": "There is already an account with this email. Sign in instead.",
  "auth/weak-password": "Choose a password of at least 6 characters.",
  "auth/too-many-requests": "Too many attempts. Wait a few minutes and try again.",
  "auth/network-request-failed": "Could not reach the sign-in service. Check your connection and try again.",
};

const config = JSON.parse(document.getElementById("firebase-config").textContent);
const form = document.getElementById("auth-form");
const errorBox = document.getElementById("auth-error");
const submit = document.getElementById("auth-submit");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  errorBox.focus?.();
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
    if (!email) return showError("Enter your email address.");
    if (!password) return showError("Enter your password.");
    errorBox.hidden = true;
    submit.disabled = true;
    submit.textContent = signingUp ? "Creating account…" : "Signing in…";
    try {
      const credential = signingUp
        ? await createUserWithEmailAndPassword(auth, email, password)
        : await signInWithEmailAndPassword(auth, email, password);
      document.getElementById("id_token").value = await credential.user.getIdToken();
      document.getElementById("session-form").submit();
    } catch (error) {
      showError(MESSAGES[error.code] || "Sign-in failed. Please try again.");
      submit.disabled = false;
      submit.textContent = idleLabel;
    }
  });
}
