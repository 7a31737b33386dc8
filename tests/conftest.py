"""Fixtures: gateways and sinks that clean up after themselves. When a test fails, the log of every gateway
it started is attached to the report, so a failure in CI can be read without rerunning it."""

import pytest

from helpers import Gateway, Sink

LOG_TAIL = 20_000  # characters of each gateway's log shown with a failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for gw in getattr(item, "_gateways", []):
            report.sections.append((f"gateway log {gw.dir.name}", gw.logs()[-LOG_TAIL:]))


@pytest.fixture
def gateway_factory(tmp_path, request):
    made = []
    request.node._gateways = made

    def make(settings=None, name=None, start=True):
        gw = Gateway(tmp_path, settings, name=name or f"gw{len(made)}")
        made.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in made:
        gw.kill()


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture
def gateway(gateway_factory, sink):
    """A gateway relaying to a sink, with small limits so tests can reach them."""
    return gateway_factory({"relay": {"next_hop": sink.next_hop}})
