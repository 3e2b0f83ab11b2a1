"""The web console at /console: server-rendered pages (Jinja2, htmx) over the features'
services, acting with the permissions of the API key it was signed in with (docs/console.md)."""
