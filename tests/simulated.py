"""A USB recorder as udev describes it, for umockdev: the simulated dock of ``make demo`` and the tests.

Only text: the caller hands it to ``UMockdev.Testbed.add_from_string``. The
block device it names (``devnode``) is real, typically a loop device holding a
FAT32 or exFAT image, so everything after udev (mounting, reading) is real.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatedRecorder:
    serial: str
    devnode: str
    fs_type: str
    label: str = "BODYCAM"
    number: int = 1
    vendor_id: str = "2b3c"
    product_id: str = "0101"

    @property
    def usb_syspath(self) -> str:
        return f"/sys/devices/pci0000:00/0000:00:14.0/usb1/1-{self.number}"

    @property
    def syspath(self) -> str:
        n = self.number
        return f"{self.usb_syspath}/1-{n}:1.0/host{n}/target{n}:0:0/{n}:0:0:0/block/sdx{n}"

    def description(self, with_media: bool = True) -> str:
        """Return the umockdev description: the USB device and its disk (with its filesystem unless not ``with_media``)."""
        media = f"E: ID_FS_TYPE={self.fs_type}\nE: ID_FS_LABEL={self.label}\nE: ID_FS_USAGE=filesystem\n"
        return f"""P: {self.usb_syspath[4:]}
E: SUBSYSTEM=usb
E: DEVTYPE=usb_device
E: ID_VENDOR_ID={self.vendor_id}
E: ID_MODEL_ID={self.product_id}
A: idVendor={self.vendor_id}
A: idProduct={self.product_id}
A: serial={self.serial}
A: manufacturer=Simulated BWC
A: product=Body-worn recorder

P: {self.syspath[4:]}
E: SUBSYSTEM=block
E: DEVTYPE=disk
E: DEVNAME={self.devnode}
E: ID_BUS=usb
E: ID_SERIAL_SHORT={self.serial}
E: ID_VENDOR_ID={self.vendor_id}
E: ID_MODEL_ID={self.product_id}
{media if with_media else ""}"""

    def plug(self, testbed, with_media: bool = True) -> None:
        """Make the recorder appear (umockdev emits the add event itself)."""
        testbed.add_from_string(self.description(with_media))

    def insert_media(self, testbed) -> None:
        """Media appears on a disk that had none: a change event."""
        testbed.set_property(self.syspath, "ID_FS_TYPE", self.fs_type)
        testbed.set_property(self.syspath, "ID_FS_LABEL", self.label)
        testbed.uevent(self.syspath, "change")

    def unplug(self, testbed) -> None:
        testbed.uevent(self.syspath, "remove")
        testbed.remove_device(self.syspath)
        testbed.remove_device(self.usb_syspath)
