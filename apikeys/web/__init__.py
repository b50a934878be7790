"""The end users' door: HTML pages to sign in with Firebase and manage one's own keys."""
