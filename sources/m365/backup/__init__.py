"""Backing up a tenant: one module per service, and what they share.

Modules, one job each: runner (the run), discovery (owners), preflight
(``coffer tenant check``), context/state/report/writer (what the
services share: the owner's session, sync state, the report, attribution),
failures (items that can never be read), and one module per service: mail
(with mimesplit), contacts (with folders), calendar, onedrive (with drive),
sites, teams (with hosted), groups (Microsoft 365 group conversations and
calendars; their pages are rendered by render.groups). The tree layout is in
docs/layout.md.
"""
