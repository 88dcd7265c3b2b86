"""Knows USB and filesystems: hotplug events, recorder profiles, read-only mounts, watch folders.

Imports nothing of custody's but ``errors`` and ``config`` types. The rest of
the project sees the named events of :mod:`custody.devices.events` and
:class:`~custody.devices.events.MediaSource`, never pyudev.
"""
