"""deploy/prometheus/rules.yml and deploy/grafana/dashboard.json against the real thing:
promtool checks and unit-tests the rules (every alert firing and silent), and a real
Prometheus scrapes a running API (two workers, a metrics token) and evaluates the rules
and every panel's query of the dashboard."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.app import monitor_pass, set_traffic
from tests.conftest import PROJECT_ROOT, backends_of
from tests.servers import free_port, wait_for_port
from tests.serving.clients import BOUNDARY, multipart
from tests.serving.processes import Load, server

PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "dashboard.json"
TOKEN = "scrape-secret-3f9a"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True,
                          text=True, timeout=60)


def alert_names() -> set[str]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_the_rules_are_valid_and_each_alert_is_tested_firing_and_silent():
    checked = promtool("check", "rules", "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "tests.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = [case for test in yaml.safe_load((PROMETHEUS / "tests.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    for name in alert_names():
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert [] in expected, f"{name}: no case where it stays silent"
        assert any(expected), f"{name}: no case where it fires"


def test_a_broken_rule_fails_its_unit_test(tmp_path):
    """The unit tests can fail: the error-rate alert at 50 % no longer fires at 9 %."""
    rules = (PROMETHEUS / "rules.yml").read_text()
    broken = rules.replace("model:vision_request_errors:ratio_rate5m > 0.05",
                           "model:vision_request_errors:ratio_rate5m > 0.5")
    assert broken != rules
    (tmp_path / "rules.yml").write_text(broken)
    (tmp_path / "tests.yml").write_text((PROMETHEUS / "tests.yml").read_text())
    tested = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode != 0 and "VisionHighErrorRate" in tested.stdout + tested.stderr


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every panel, with Grafana's variables as a run would set
    them: every model, a 30 s rate window (four 1 s scrapes and more)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"].replace("$__rate_interval", "30s")
             .replace("$model", ".*"))
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_follows_grafanas_schema():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["refId"] and target["datasource"]["uid"] == "${datasource}"
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used - variables)
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("requests", "answer time", "errors", "shadow", "drift", "unfamiliar"):
        assert subject in titles


class Prometheus:
    """A real Prometheus (Debian's package) scraping one target every second."""

    def __init__(self, folder: Path, target: str, token: str):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS / "rules.yml")],
            "scrape_configs": [{"job_name": "vision-api", "static_configs": [
                {"targets": [target]}], "authorization": {"credentials": token}}]}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, 30, self.process)

    def get(self, path: str, **query: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expression: str) -> list:
        return self.get("/api/v1/query", query=expression)["result"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.mark.slow
def test_prometheus_scrapes_the_api_and_every_panel_shows_data(candidate_copy, tmp_path):
    backends = backends_of(candidate_copy)
    set_traffic(backends, actor="rita", mode="shadow", candidate=2, percent=None,
                reason="compare v2 on live traffic", now=datetime.now(UTC))
    with server(candidate_copy, workers=2, environment={"METRICS_TOKEN": TOKEN}) as (port, _), \
            Load(port, threads=2, pause=0.02) as load:
        load.wait_until(lambda seen: 1 in seen, 30)
        time.sleep(2)  # more than the 30 predictions a snapshot's drift report needs
        # The hour of this traffic, closed and summarized as the monitor will in an hour.
        monitor_pass(backends, datetime.now(UTC) + timedelta(hours=1, minutes=2))
        prometheus = Prometheus(tmp_path, f"127.0.0.1:{port}", TOKEN)
        try:
            bad_request(port)
            queries = panel_queries()
            deadline, empty = time.monotonic() + 60, queries
            while empty and time.monotonic() < deadline:
                time.sleep(2)
                empty = [(title, query) for title, query in queries
                         if not prometheus.query(query)]
            assert not empty, f"panels without data: {empty}"
            targets = prometheus.get("/api/v1/targets")["activeTargets"]
            assert [target["health"] for target in targets] == ["up"], targets
            rules = [rule for group in prometheus.get("/api/v1/rules")["groups"]
                     for rule in group["rules"]]
            assert {rule["name"] for rule in rules} >= alert_names()
            assert {rule["health"] for rule in rules} == {"ok"}, [
                (rule["name"], rule.get("lastError")) for rule in rules]
            # Both workers' counts add up in what Prometheus sees (a scrape reaches one).
            before = len(load.answered_ids())
            time.sleep(2.5)
            answered = prometheus.query('sum(vision_requests_total{status="200"})')
            assert float(answered[0]["value"][1]) >= before
        finally:
            prometheus.stop()


def bad_request(port: int) -> None:
    """A request the API refuses (400): the errors panel's series."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/predict", data=multipart(b"not an image"),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 400, error.read()
    else:
        raise AssertionError("a non-image was answered")
