"""Running a simulated device: `serve` is what `qrt device` runs."""

from __future__ import annotations

import logging

from qrt_common.lifecycle import serve_health, until_signalled
from qrt_common.settings import Settings

from .config import load_config
from .service import Device

logger = logging.getLogger("qrt")


async def serve(settings: Settings) -> None:
    """Answer the 2200/2300 protocol until SIGINT or SIGTERM, as QRT_DEVICE_CONFIG describes the
    device (raises DeviceConfigError if it cannot be used)."""
    config = load_config(settings.device_config)
    device = Device(config, settings.device_rep_address, settings.device_pub_address)
    await device.start()
    logger.info("device %s answering on %s", config.name, device.rep_endpoint)
    operations = await serve_health(settings, {"sockets": device.is_ready})
    try:
        await until_signalled()
    finally:
        await operations.cleanup()
        await device.close()
