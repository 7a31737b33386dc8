"""Fixtures: gateways and sinks that clean up after themselves."""

import pytest

from helpers import Gateway, Sink


@pytest.fixture
def gateway_factory(tmp_path):
    made = []

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
