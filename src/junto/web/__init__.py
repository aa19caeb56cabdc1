"""HTTP: JSON API routers, server-rendered pages, templates and static files."""
