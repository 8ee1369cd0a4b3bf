"""What a RabbitMQ outage writes to the logs: a line a minute for each connection, not two every try."""

import asyncio
import logging
from urllib.parse import urlsplit

from shared.bus import Bus
from shared.logs import RECONNECT_LOGGERS, ReconnectNoiseFilter, quiet_reconnects
from tests.conftest import eventually
from tests.proxy import TcpProxy


def _attempt_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aio_pika.robust_connection" and str(r.msg).startswith("Connection attempt")]


async def test_a_rabbitmq_outage_logs_one_line_a_minute_for_each_connection(base_settings, caplog):
    target = urlsplit(base_settings.amqp_url)
    proxy = await TcpProxy(target.hostname, target.port).start()
    # The robust connection tries again every 50 ms here (5 s by default), so the outage makes many attempts fast.
    url = base_settings.amqp_url.replace(target.netloc.split("@")[-1], proxy.address) + "?reconnect_interval=0.05"
    noise = quiet_reconnects()
    bus = Bus(base_settings.model_copy(update={"amqp_url": url}))
    await bus.connect()
    try:
        with caplog.at_level(logging.INFO):
            await proxy.cut()
            await eventually(lambda: asyncio.sleep(0, noise.held_back >= 10))
            [first] = _attempt_lines(caplog)  # the outage is reported once, not on each of the attempts
            assert "Reconnecting after" in first.getMessage()
            assert not [r for r in caplog.records if str(r.msg).startswith("error when creating transport")]  # aiormq's ERROR twin
            noise.INTERVAL_SECONDS = 0.0  # as if the minute had passed: the next line counts what was held back
            await eventually(lambda: asyncio.sleep(0, len(_attempt_lines(caplog)) >= 2))
            second = _attempt_lines(caplog)[1].getMessage()
            assert "more attempts failed since the last such line" in second
            assert int(second.split("(")[-1].split()[0]) >= 10
            await proxy.restore()
            await eventually(lambda: asyncio.sleep(0, bus.is_open), timeout=30)  # and it still reconnects
    finally:
        await bus.close()
        await proxy.cut()
        for name in RECONNECT_LOGGERS:
            logger = logging.getLogger(name)
            logger.filters[:] = [f for f in logger.filters if not isinstance(f, ReconnectNoiseFilter)]
