"""USB block devices from udev, as named events. The only module that imports pyudev.

Coldplug (:meth:`UdevWatcher.present`) reports what is already plugged in as
if it had just been added; hotplug (:meth:`UdevWatcher.poll`) turns kernel
uevents into :class:`RecorderDocked`, :class:`MediaReady` and
:class:`RecorderUndocked`. A recorder that first shows an empty disk and gets
media later (a card inserted, a recorder that exposes its storage after
booting) sends a ``change`` event, which becomes MediaReady then.
"""

from __future__ import annotations

import logging

import pyudev

from custody.devices.events import (
    DeviceEvent,
    DeviceIdentity,
    MediaReady,
    RecorderDocked,
    RecorderUndocked,
)

log = logging.getLogger(__name__)


class UdevWatcher:
    """Follows USB block devices. Create it before devices may appear, then poll it."""

    def __init__(self) -> None:
        self._context = pyudev.Context()
        # The monitor exists before enumeration, so nothing plugged in between is missed.
        self._monitor = pyudev.Monitor.from_netlink(self._context)
        self._monitor.filter_by("block")
        self._monitor.start()
        self._with_media: set[str] = set()

    def fileno(self) -> int:
        return self._monitor.fileno()

    def present(self) -> list[DeviceEvent]:
        """Return the events for USB block devices present now (coldplug), disks before partitions."""
        events: list[DeviceEvent] = []
        devices = sorted(
            self._context.list_devices(subsystem="block"), key=lambda d: (d.device_type != "disk", d.sys_path)
        )
        for device in devices:
            if _is_usb(device):
                events += self._translate("add", device)
        return events

    def poll(self, timeout: float) -> list[DeviceEvent]:
        """Wait up to ``timeout`` seconds for a uevent; return the events it means (often none)."""
        device = self._monitor.poll(timeout=timeout)
        if device is None:
            return []
        if device.action != "remove" and not _is_usb(device):
            return []
        if device.action == "remove" and not _is_usb(device) and device.sys_path not in self._with_media:
            return []
        return self._translate(device.action or "", device)

    def _translate(self, action: str, device: pyudev.Device) -> list[DeviceEvent]:
        identity = identity_of(device)
        events: list[DeviceEvent] = []
        if action == "add":
            if identity.devtype == "disk":
                events.append(RecorderDocked(identity))
            if identity.fs_type:
                self._with_media.add(identity.syspath)
                events.append(MediaReady(identity))
        elif action == "change":
            if identity.fs_type and identity.syspath not in self._with_media:
                self._with_media.add(identity.syspath)
                events.append(MediaReady(identity))
            elif not identity.fs_type and identity.syspath in self._with_media:
                # Media taken out of a reader that stays plugged in.
                self._with_media.discard(identity.syspath)
                events.append(RecorderUndocked(identity))
        elif action == "remove":
            self._with_media.discard(identity.syspath)
            events.append(RecorderUndocked(identity))
        if events:
            log.info("udev %s %s", action, identity.describe())
        return events

    def close(self) -> None:
        # Closing the monitor's netlink socket (pyudev has no stop()).
        del self._monitor


def _is_usb(device: pyudev.Device) -> bool:
    if device.properties.get("ID_BUS") == "usb":
        return True
    return device.find_parent("usb", "usb_device") is not None


def identity_of(device: pyudev.Device) -> DeviceIdentity:
    """Return the identity udev gives a block device, filling gaps from its USB parent."""
    props = device.properties
    usb = device.find_parent("usb", "usb_device")

    def attribute(name: str) -> str:
        if usb is None:
            return ""
        value = usb.attributes.get(name)
        return value.decode("utf-8", "replace").strip() if value else ""

    return DeviceIdentity(
        syspath=device.sys_path,
        devnode=props.get("DEVNAME") or device.device_node or "",
        devtype=device.device_type or props.get("DEVTYPE") or "disk",
        serial=props.get("ID_SERIAL_SHORT") or attribute("serial"),
        vendor_id=(props.get("ID_VENDOR_ID") or attribute("idVendor")).lower(),
        product_id=(props.get("ID_MODEL_ID") or attribute("idProduct")).lower(),
        vendor=props.get("ID_VENDOR") or attribute("manufacturer"),
        model=props.get("ID_MODEL") or attribute("product"),
        fs_type=props.get("ID_FS_TYPE", ""),
        fs_label=props.get("ID_FS_LABEL", ""),
        fs_uuid=props.get("ID_FS_UUID", ""),
    )
