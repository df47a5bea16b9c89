"""Word pools for the tenant generator: people, subjects, folder names, hostile names.

Hostile names are legal on OneDrive (none of `" * : < > ? / \\ |`, no leading or trailing
space, no trailing dot, no reserved device name) but awkward elsewhere: non-ASCII scripts,
right-to-left text, emoji, NFC and NFD spellings of the same word side by side, leading
dashes, URL-significant characters, and names longer than Linux's 255-byte limit once
encoded in UTF-8.
"""

from __future__ import annotations

import unicodedata

FIRST = [
    "Adele",
    "Alex",
    "Bianca",
    "Chen",
    "Diego",
    "Élodie",
    "Farid",
    "Greta",
    "Hiroshi",
    "Ingrid",
    "José",
    "Katarzyna",
    "Lars",
    "Mei",
    "Nadia",
    "Oğuz",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Tomás",
    "Ulla",
    "Varun",
    "Wanda",
    "Xavier",
    "Yara",
    "Zoë",
    "Łukasz",
    "Ñuño",
    "Ana",
]
LAST = [
    "Vance",
    "Wilber",
    "Müller",
    "Nakamura",
    "García",
    "Dubois",
    "Haddad",
    "Johansson",
    "Kowalski",
    "Lindqvist",
    "O'Brien",
    "Patel",
    "Rossi",
    "Schäfer",
    "Tanaka",
    "Ünal",
    "Van der Berg",
    "Wójcik",
    "Øvergaard",
    "Åberg",
    "Núñez",
    "Zhang",
    "Fischer",
    "Moreau",
    "Costa",
    "Silva",
    "Novák",
    "Kim",
]
COMPANIES = [
    "Fabrikam",
    "Northwind Traders",
    "Tailspin Toys",
    "Wingtip",
    "Adventure Works",
    "Proseware",
    "Lítware",
]
EXTERNAL_DOMAINS = ["fabrikam.com", "northwind.example", "tailspintoys.example", "wingtip.example"]

SUBJECTS = [
    "Quarterly report",
    "Budget review for next year",
    "Re: Project Apollo kickoff",
    "Invoice #{n}",
    "Meeting notes {n}",
    "Fw: Contract draft v{n}",
    "Holiday schedule",
    "Customer feedback summary",
    "Release plan for version {n}",
    "Security training reminder",
    "Backup window change",
    "Welcome to the team!",
]
SUBJECTS_INTL = [
    "Überprüfung der Ergebnisse – Q{n}",
    "Résumé de la réunion n°{n}",
    "Presupuesto año próximo ({n})",
    "会議の議事録 {n}",
    "Отчёт за квартал {n}",
    "Ψηφοφορία για το έργο {n}",
    "العقد النهائي {n}",
    "Party time 🎉 #{n}",
]
MAIL_FOLDERS = [
    "Projects",
    "Receipts",
    "Newsletters",
    "Ünïcode Földer 📁",
    "Clients",
    "Archive 2023",
    "Travel",
    "HR",
    "Legal",
    "Vendors",
    "Finance",
    "Team",
]
SUB_FOLDERS = ["Project Apollo", "2024", "Q3", "Older", "Keep", "Follow-up"]
DRIVE_FOLDERS = [
    "Documents",
    "Pictures",
    "Projects",
    "Shared with team",
    "Archive",
    "Scans",
    "Reports",
    "Templates",
]
SITE_NAMES = [
    "Marketing",
    "Engineering",
    "Human Resources",
    "Finance",
    "Sales",
    "Legal",
    "Operations",
    "Support",
]
TEAM_NAMES = [
    "Project Apollo",
    "Helpdesk",
    "Leadership",
    "Product Launch",
    "Café Crew ☕",
    "Data Platform",
]
CHANNEL_NAMES = ["General", "Announcements", "Design", "Random", "Incidents"]
LIST_NAMES = ["Tasks", "Inventory", "Issue tracker", "Contacts list"]

EXTENSIONS = [
    (
        ".docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "PK\x03\x04",
        False,
    ),
    (
        ".xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "PK\x03\x04",
        False,
    ),
    (
        ".pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "PK\x03\x04",
        False,
    ),
    (".pdf", "application/pdf", "%PDF-1.7\n", False),
    (".txt", "text/plain", "", True),
    (".csv", "text/csv", "", True),
    (".md", "text/markdown", "", True),
    (".png", "image/png", "\x89PNG\r\n\x1a\n", False),
    (".jpg", "image/jpeg", "\xff\xd8\xff\xe0", False),
    (".zip", "application/zip", "PK\x03\x04", False),
    (".mp4", "video/mp4", "\x00\x00\x00\x18ftypmp42", False),
]

_NFC = unicodedata.normalize("NFC", "Résumé")
_NFD = unicodedata.normalize("NFD", "Résumé")

HOSTILE_NAMES = [
    f"{_NFC} (NFC).txt",
    f"{_NFD} (NFD).txt",
    "日本語のファイル名.txt",
    "emoji 😀🎉 file.txt",
    "שלום עולם.txt",
    "-rf.txt",
    "#hash %percent &amp +plus.txt",
    "name  with   spaces.txt",
    "~$locked.docx",
    "ü" * 200 + ".txt",  # 204 characters, 404 bytes in UTF-8: legal on OneDrive, not on Linux
    "a" * 250 + ".txt",
    "semi;colon, comma 'quote' [brackets] {braces}.txt",
]

ATTACHMENT_NAMES = [
    "report",
    "invoice",
    "photo",
    "contract",
    "slides",
    "data",
    "scan",
    "notes",
    "Übersicht",
    "見積書",
]


def ascii_local(first: str, last: str) -> str:
    """An email local part from a person's name (accents removed)."""

    def fold(s: str) -> str:
        table = {
            "ø": "o",
            "Ø": "O",
            "ł": "l",
            "Ł": "L",
            "ß": "ss",
            "æ": "ae",
            "Æ": "AE",
            "'": "",
            " ": "",
        }
        s = "".join(table.get(c, c) for c in s)
        return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()

    return f"{fold(first)}.{fold(last)}".lower()
