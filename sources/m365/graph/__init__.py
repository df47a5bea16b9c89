"""Microsoft Graph plumbing shared by backup and restore.

Modules, one job each: connection (where and how to sign in), client (the
HTTP client: every request, retries, paging, downloads), auth (msal, the only
module that imports it), throttle (per-resource gates and the meter), errors
(the error tree and how a Graph answer is classified), hashing (OneDrive's
quickXorHash while downloading). Nothing here knows a service or imports the
rest of sources.m365 (an import-linter contract in pyproject.toml).
"""
