"""Renderings of Graph items for people and other programs: vCard, iCalendar, HTML.

The Graph JSON stays the item of record (restore reads it); these files are
for opening a backup with ordinary tools. Each function takes the Graph JSON
and returns bytes; none of them fails on missing or odd fields.
"""
