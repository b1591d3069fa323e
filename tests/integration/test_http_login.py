# SPDX-License-Identifier: Apache-2.0
#
# HTTP API access with users of the password file (issue 12, auth.http_login): without
# credentials /api/* and /metrics answer 401 and /health 200; a wrong password is refused
# and counted (and counts towards the per-address login limit); Basic credentials and the
# session cookie of POST /api/login open the API; logout ends the session; the bearer
# token keeps working next to them.

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest

import broker as broker_mod

pytestmark = pytest.mark.skipif(broker_mod.is_mosquitto(), reason="Sluice's HTTP API")
SLUICE = broker_mod.sluice_binary()


def call(port, path, method="GET", body=None, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


@pytest.fixture
def login_broker(tmp_path):
    pw = str(tmp_path / "passwd")
    subprocess.run([SLUICE, "passwd", "-c", "-b", pw, "grafana", "s3cret"], check=True, timeout=30)
    b = broker_mod.Broker(config_text='[auth]\npassword_file = "%s"\nhttp_login = true\napi_token = "tok"\n'
                          'max_failures_per_minute = 3\n' % pw)
    b.start()
    b.http = int(open(os.path.join(b.data_dir, "http.port")).read())
    yield b
    try:
        assert b.alive(), b.log_tail()
        assert b.stop() == 0, b.log_tail()
    finally:
        b.cleanup()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def test_api_needs_a_user_or_the_token(login_broker):
    p = login_broker.http
    assert call(p, "/health")[0] == 200
    assert call(p, "/api/overview")[0] == 401
    assert call(p, "/metrics")[0] == 401
    assert call(p, "/metrics", headers=basic("grafana", "s3cret"))[0] == 200
    assert call(p, "/metrics", headers=basic("grafana", "nope"))[0] == 401
    assert call(p, "/api/overview", headers={"Authorization": "Bearer tok"})[0] == 200
    status, body, _ = call(p, "/api/whoami", headers=basic("grafana", "s3cret"))
    assert status == 200 and json.loads(body)["by"] == "basic"


def test_login_session_and_logout(login_broker):
    p = login_broker.http
    status, body, _ = call(p, "/api/login", "POST", {"username": "grafana", "password": "wrong"})
    assert status == 401 and "wrong" in body
    status, body, headers = call(p, "/api/login", "POST", {"username": "grafana", "password": "s3cret"})
    assert status == 200, body
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = {"Cookie": cookie.split(";")[0]}
    assert call(p, "/api/overview", headers=session)[0] == 200
    assert json.loads(call(p, "/api/whoami", headers=session)[1])["user"] == "grafana"
    assert call(p, "/api/logout", "POST", headers=session)[0] == 200
    assert call(p, "/api/overview", headers=session)[0] == 401
    assert call(p, "/api/overview", headers={"Cookie": "sluice_session=forged"})[0] == 401
    metrics = call(p, "/metrics", headers={"Authorization": "Bearer tok"})[1]
    assert 'sluice_http_logins_total{result="ok"} 1' in metrics
    assert 'sluice_http_logins_total{result="failed"} 1' in metrics


def test_guessing_is_rate_limited_per_address(login_broker):
    p = login_broker.http
    for _ in range(3):
        assert call(p, "/api/login", "POST", {"username": "grafana", "password": "guess"})[0] == 401
    # Past the limit even the right password is refused for the rest of the minute.
    assert call(p, "/api/login", "POST", {"username": "grafana", "password": "s3cret"})[0] == 401
    metrics = call(p, "/metrics", headers={"Authorization": "Bearer tok"})[1]
    assert 'sluice_auth_connects_total{result="rate_limited"} 1' in metrics
