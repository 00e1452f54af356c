"""hvac, the Python client, against Strongroom: init/unseal, kv v2, policies, tokens."""
import hvac
import pytest
from hvac import exceptions


def test_init_unseal_seal(fresh_server):
    client = hvac.Client(url=fresh_server.addr)
    assert client.sys.is_initialized() is False
    result = client.sys.initialize(secret_shares=5, secret_threshold=3)
    assert len(result["keys"]) == 5 and len(result["keys_base64"]) == 5
    root = result["root_token"]
    assert client.sys.is_sealed() is True
    status = client.sys.submit_unseal_key(result["keys"][0])
    assert status["progress"] == 1 and status["sealed"] is True
    status = client.sys.submit_unseal_keys(result["keys_base64"][1:3])
    assert status["sealed"] is False
    client.token = root
    assert client.is_authenticated()
    client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret("a", secret={"x": "1"})
    client.sys.seal()
    assert client.sys.is_sealed() is True
    with pytest.raises(exceptions.VaultDown):
        client.secrets.kv.v2.read_secret_version("a", raise_on_deleted_version=True)
    client.sys.submit_unseal_keys(result["keys"][2:5])
    assert client.secrets.kv.v2.read_secret_version("a", raise_on_deleted_version=True)["data"]["data"] == {"x": "1"}


def test_kv_v2(dev_server):
    client = hvac.Client(url=dev_server.addr, token="root")
    kv = client.secrets.kv.v2
    kv.configure(max_versions=5, mount_point="secret")
    assert kv.read_configuration(mount_point="secret")["data"]["max_versions"] == 5
    w = kv.create_or_update_secret("app/db", secret={"user": "u", "pass": "p1"})
    assert w["data"]["version"] == 1
    kv.create_or_update_secret("app/db", secret={"user": "u", "pass": "p2"}, cas=1)
    with pytest.raises(exceptions.InvalidRequest):
        kv.create_or_update_secret("app/db", secret={"pass": "stale"}, cas=1)
    kv.patch("app/db", secret={"pass": "p3"})
    r = kv.read_secret_version("app/db", raise_on_deleted_version=True)
    assert r["data"]["data"] == {"user": "u", "pass": "p3"}
    assert r["data"]["metadata"]["version"] == 3
    assert kv.read_secret_version("app/db", version=1, raise_on_deleted_version=True)["data"]["data"]["pass"] == "p1"
    assert kv.list_secrets("app")["data"]["keys"] == ["db"]
    kv.delete_latest_version_of_secret("app/db")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version("app/db", raise_on_deleted_version=True)
    kv.undelete_secret_versions("app/db", versions=[3])
    assert kv.read_secret_version("app/db", raise_on_deleted_version=True)["data"]["data"]["pass"] == "p3"
    kv.destroy_secret_versions("app/db", versions=[1])
    meta = kv.read_secret_metadata("app/db")["data"]
    assert meta["versions"]["1"]["destroyed"] is True and meta["current_version"] == 3
    kv.update_metadata("app/db", max_versions=2, custom_metadata={"owner": "team"})
    meta = kv.read_secret_metadata("app/db")["data"]
    assert meta["custom_metadata"] == {"owner": "team"} and len(meta["versions"]) == 2
    kv.delete_metadata_and_all_versions("app/db")
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_metadata("app/db")


def test_policies(dev_server):
    client = hvac.Client(url=dev_server.addr, token="root")
    policy = 'path "secret/data/team/*" {\n  capabilities = ["read", "create", "update"]\n}\n'
    client.sys.create_or_update_acl_policy(name="team", policy=policy)
    assert "team" in client.sys.list_acl_policies()["data"]["keys"]
    assert "secret/data/team/*" in client.sys.read_acl_policy("team")["data"]["policy"]
    assert "team" in client.sys.list_policies()["data"]["policies"]
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_acl_policy(name="Root", policy=policy)
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_acl_policy(name="bad", policy='path "x" { capabilities = ["fly"] }')
    tok = client.auth.token.create(policies=["team"], ttl="1h")["auth"]["client_token"]
    user = hvac.Client(url=dev_server.addr, token=tok)
    user.secrets.kv.v2.create_or_update_secret("team/a", secret={"k": "v"})
    with pytest.raises(exceptions.Forbidden):
        user.secrets.kv.v2.create_or_update_secret("other/a", secret={"k": "v"})
    client.sys.delete_acl_policy("team")
    assert "team" not in client.sys.list_acl_policies()["data"]["keys"]


def test_tokens(dev_server):
    client = hvac.Client(url=dev_server.addr, token="root")
    created = client.auth.token.create(policies=["default"], ttl="30m", meta={"job": "42"})
    tok = created["auth"]["client_token"]
    acc = created["auth"]["accessor"]
    look = client.auth.token.lookup(tok)["data"]
    assert look["policies"] == ["default"] and look["meta"] == {"job": "42"}
    assert 1700 < look["ttl"] <= 1800
    renewed = client.auth.token.renew(tok, increment="1h")
    assert renewed["auth"]["lease_duration"] > 3500
    self_client = hvac.Client(url=dev_server.addr, token=tok)
    assert self_client.auth.token.lookup_self()["data"]["accessor"] == acc
    assert client.auth.token.lookup_accessor(acc)["data"]["id"] == ""
    client.auth.token.revoke(tok)
    with pytest.raises(exceptions.Forbidden):
        self_client.auth.token.lookup_self()
    orphan = client.auth.token.create_orphan(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke_accessor(client.auth.token.lookup(orphan)["data"]["accessor"])
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=dev_server.addr, token=orphan).auth.token.lookup_self()
