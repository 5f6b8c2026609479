"""The test/benchmark runner's readiness wait (harness.runner._wait_ready), against a fake server."""

from dataclasses import dataclass, field

import httpx
import pytest
import yaml

from harness import runner


@dataclass
class FakeServer:
    """Answers the probe with `answers` in turn (the last one repeats); `serve status` with `statuses`."""

    config_path: object
    log: object
    answers: list[int]
    statuses: list[str]
    posts: list[dict] = field(default_factory=list)

    def post(self, data=None, files=None, timeout=None):
        self.posts.append(data)
        status = self.answers[min(len(self.posts), len(self.answers)) - 1]
        return httpx.Response(status, text=f"answer {status}", request=httpx.Request("POST", "http://fake"))

    def app_status(self):
        return {"status": self.statuses[min(len(self.posts), len(self.statuses)) - 1]}


class Running:
    def poll(self):
        return None


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    monkeypatch.setattr(runner, "STARTUP_TIMEOUT_S", 5)  # a runner that never gives up fails, not hangs
    config = {"applications": [{"args": {"models": [{"name": "whisper-base"}]}}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "serve.log").write_text("the log")
    return lambda answers, statuses: FakeServer(tmp_path / "config.yaml", tmp_path / "serve.log", answers, statuses)


def test_answers_while_loading_are_retried_until_the_first_200(server):
    srv = server([404, 503, 500, 200], ["DEPLOYING"])  # the route not served yet, then replicas loading
    runner._wait_ready(Running(), srv)
    assert len(srv.posts) == 4


@pytest.mark.parametrize("status", [500, 401, 400])
def test_a_running_app_that_keeps_refusing_the_probe_fails_fast(server, status):
    srv = server([status], ["RUNNING"])
    with pytest.raises(RuntimeError, match=f"gets {status}: answer {status}") as info:
        runner._wait_ready(Running(), srv)
    assert len(srv.posts) == 3 and "the log" in str(info.value)
