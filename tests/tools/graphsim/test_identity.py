"""Identity platform conformance with plain msal + requests (issue 3, "Identity")."""

from __future__ import annotations

import time

import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tools.graphsim.certs import load_certificate, x5t
from tools.graphsim.testing import GRAPH_SCOPE, RunningTenant, running_tenant, trusted_session

pytestmark = pytest.mark.sim


def _app(
    t: RunningTenant, credential: object, client_id: str | None = None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id or t.info.client_id,
        client_credential=credential,
        authority=t.info.authority,
        instance_discovery=False,
        http_client=trusted_session(t.info),
    )


def test_openid_configuration_has_what_msal_needs(tenant: RunningTenant) -> None:
    cfg = (
        trusted_session(tenant.info)
        .get(f"{tenant.info.authority}/v2.0/.well-known/openid-configuration")
        .json()
    )
    assert cfg["token_endpoint"] == f"{tenant.info.authority}/oauth2/v2.0/token"
    assert cfg["authorization_endpoint"].startswith(tenant.info.authority)
    assert cfg["device_authorization_endpoint"] == f"{tenant.info.authority}/oauth2/v2.0/devicecode"
    keys = trusted_session(tenant.info).get(cfg["jwks_uri"]).json()["keys"]
    assert keys
    assert keys[0]["kty"] == "RSA"


def test_client_secret_gets_a_graph_token(tenant: RunningTenant) -> None:
    result = _app(tenant, tenant.info.client_secret).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["token_type"].lower() == "bearer"
    assert int(result["expires_in"]) > 300
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == tenant.info.tenant_id
    assert claims["appid"] == tenant.info.client_id
    assert claims["appidacr"] == "1"
    assert "Mail.ReadWrite" in claims["roles"]


@pytest.mark.parametrize("style", ["thumbprint", "public_certificate"])
def test_certificate_assertion_gets_a_token(tenant: RunningTenant, style: str) -> None:
    cred: dict[str, str] = {"private_key": tenant.info.private_key.read_text()}
    if style == "thumbprint":
        cred["thumbprint"] = tenant.info.thumbprint  # RS256 with x5t
    else:
        cred["public_certificate"] = tenant.info.certificate.read_text()  # PS256 with x5t#S256
    result = _app(tenant, cred).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["appidacr"] == "2"
    resp = tenant.session().get(
        tenant.url("/users"), headers={"Authorization": f"Bearer {result['access_token']}"}
    )
    assert resp.status_code == 200


def test_wrong_secret_is_invalid_client(tenant: RunningTenant) -> None:
    result = _app(tenant, "not-the-secret").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215:")
    assert 7000215 in result["error_codes"]
    for key in ("trace_id", "correlation_id", "timestamp"):
        assert key in result


def test_foreign_certificate_is_rejected(tenant: RunningTenant, tmp_path) -> None:
    with running_tenant(tmp_path / "other", seed=99) as other:
        cred = {
            "private_key": other.info.private_key.read_text(),
            "thumbprint": other.info.thumbprint,
        }
        result = _app(tenant, cred).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert "AADSTS700027" in result["error_description"]


def test_assertion_with_right_thumbprint_but_wrong_key_fails_signature(
    tenant: RunningTenant, tmp_path
) -> None:
    with running_tenant(tmp_path / "other", seed=98) as other:
        # Our thumbprint in the header, another key's signature.
        cred = {
            "private_key": other.info.private_key.read_text(),
            "thumbprint": tenant.info.thumbprint,
        }
        result = _app(tenant, cred).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith(
        "AADSTS700027: Client assertion contains an invalid signature"
    )


def test_assertion_checks_audience_issuer_and_expiry(tenant: RunningTenant) -> None:

    key = serialization.load_pem_private_key(tenant.info.private_key.read_bytes(), password=None)

    header = {"x5t": x5t(load_certificate(tenant.info.certificate))}
    endpoint = f"{tenant.info.authority}/oauth2/v2.0/token"
    now = int(time.time())
    base = {
        "aud": endpoint,
        "iss": tenant.info.client_id,
        "sub": tenant.info.client_id,
        "exp": now + 300,
        "iat": now,
        "jti": "x",
    }
    s = trusted_session(tenant.info)

    def post(claims: dict[str, object]) -> dict[str, object]:
        assertion = jwt.encode(claims, key, algorithm="RS256", headers=header)  # type: ignore[arg-type]
        form = {
            "client_id": tenant.info.client_id,
            "grant_type": "client_credentials",
            "scope": GRAPH_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        resp = s.post(endpoint, data=form)
        return {"status": resp.status_code, **resp.json()}

    assert "access_token" in post(base)
    bad_aud = post({**base, "aud": "https://login.microsoftonline.com/x/oauth2/v2.0/token"})
    assert bad_aud["status"] == 401
    assert "AADSTS700023" in str(bad_aud["error_description"])
    bad_iss = post({**base, "iss": "someone-else", "sub": "someone-else"})
    assert bad_iss["status"] == 401
    assert "AADSTS700021" in str(bad_iss["error_description"])
    expired = post({**base, "exp": now - 3600, "iat": now - 4000})
    assert expired["status"] == 401
    assert "AADSTS700024" in str(expired["error_description"])


def test_unknown_client_and_bad_scope(tenant: RunningTenant) -> None:
    result = _app(
        tenant, "x", client_id="00000000-0000-0000-0000-000000000001"
    ).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert "AADSTS700016" in result["error_description"]
    result = _app(tenant, tenant.info.client_secret).acquire_token_for_client(
        scopes=["https://graph.microsoft.com/Mail.Read"]
    )
    assert result["error"] == "invalid_scope"


def test_graph_rejects_missing_forged_and_expired_tokens(tmp_path) -> None:
    with running_tenant(tmp_path / "t", seed=4, token_lifetime=2) as t:
        s = t.session()
        resp = s.get(t.url("/users"))
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert "WWW-Authenticate" in resp.headers
        token = t.token()
        header, payload, sig = token.split(".")
        forged = f"{header}.{payload}.{sig[:-4]}AAAA"
        resp = s.get(t.url("/users"), headers={"Authorization": f"Bearer {forged}"})
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
        ok = s.get(t.url("/users"), headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        time.sleep(2.2)
        expired = s.get(t.url("/users"), headers={"Authorization": f"Bearer {token}"})
        assert expired.status_code == 401
        assert (
            expired.json()["error"]["message"]
            == "Lifetime validation failed, the token is expired."
        )
        # msal never serves a token under 300 s from its cache, so a new call refreshes.
        app = _app(t, t.info.client_secret)
        first = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
        time.sleep(1.1)
        second = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
        assert first != second


def test_admin_can_expire_every_token(fresh_tenant: RunningTenant) -> None:
    s = fresh_tenant.graph()
    assert s.get(fresh_tenant.url("/users")).status_code == 200
    fresh_tenant.admin.expire_tokens()
    resp = s.get(fresh_tenant.url("/users"))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert fresh_tenant.graph().get(fresh_tenant.url("/users")).status_code == 200


def test_device_code_flow_signs_in_one_user(fresh_tenant: RunningTenant) -> None:
    t = fresh_tenant
    fresh_tenant.admin.settings(device_code_interval=1)
    app = msal.PublicClientApplication(
        t.info.client_id,
        authority=t.info.authority,
        instance_discovery=False,
        http_client=trusted_session(t.info),
    )
    flow = app.initiate_device_flow(scopes=["Mail.Read", "Files.Read"])
    assert flow["user_code"]
    assert flow["verification_uri"].startswith("https://127.0.0.1")
    # Before the user signs in: authorization_pending (one poll, no waiting).
    pending = app.acquire_token_by_device_flow(dict(flow), exit_condition=lambda f: True)
    assert pending["error"] == "authorization_pending"
    user = next(u for u in t.admin.users() if u["purpose"] == "user")
    t.admin.approve_device_code(flow["user_code"], user["userPrincipalName"])
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    s = t.session()
    s.headers["Authorization"] = f"Bearer {result['access_token']}"
    me = s.get(t.url("/me"))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert s.get(t.url("/me/mailFolders/inbox/messages")).status_code == 200
    other = next(u for u in t.admin.users() if u["purpose"] == "user" and u["id"] != user["id"])
    denied = s.get(t.url(f"/users/{other['id']}/messages"))
    assert denied.status_code == 403
    # The refresh token works through msal's silent path.
    account = app.get_accounts()[0]
    assert account["username"] == user["userPrincipalName"]
    again = app.acquire_token_silent(["Mail.Read"], account=account, force_refresh=True)
    assert again
    assert "access_token" in again


def test_declined_and_unknown_device_codes(fresh_tenant: RunningTenant) -> None:
    t = fresh_tenant
    s = requests.Session()
    s.trust_env = False
    s.verify = str(t.info.ca_file)
    flow = s.post(
        f"{t.info.authority}/oauth2/v2.0/devicecode",
        data={"client_id": t.info.client_id, "scope": "Mail.Read"},
    ).json()
    user = t.admin.users()[0]
    t.admin.decline_device_code(flow["user_code"], user["userPrincipalName"])
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": t.info.client_id,
        "device_code": flow["device_code"],
    }
    resp = s.post(f"{t.info.authority}/oauth2/v2.0/token", data=form)
    assert resp.status_code == 400
    assert resp.json()["error"] == "authorization_declined"
    form["device_code"] = "nonsense"
    assert (
        s.post(f"{t.info.authority}/oauth2/v2.0/token", data=form).json()["error"]
        == "bad_verification_code"
    )


def test_app_only_token_cannot_use_me(tenant: RunningTenant) -> None:
    resp = tenant.graph().get(tenant.url("/me"))
    assert resp.status_code == 400
