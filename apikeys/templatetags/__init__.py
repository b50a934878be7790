"""Template filters the web pages and the admin share."""
