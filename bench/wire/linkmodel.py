"""A modelled link: what a run's traffic would cost in time on a given connection.

    comm_s = wire_up_bytes x 8 / uplink + wire_down_bytes x 8 / downlink + exchanges x rtt

The bytes are the frames' (headers included, bench/wire/frames.py); an exchange is a message
whose reply the client must wait for (a FULL step's gradient, a weight fetch), so it pays one
round trip; activations of FORWARD epochs stream without waiting. Clients take turns at the one
server, so their times add up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinkModel:
    uplink_mbit: float
    downlink_mbit: float
    rtt_ms: float = 0.0

    def seconds(self, up_bytes: float, down_bytes: float, exchanges: float) -> float:
        return (up_bytes * 8 / (self.uplink_mbit * 1e6) + down_bytes * 8 / (self.downlink_mbit * 1e6)
                + exchanges * self.rtt_ms / 1e3)

    @property
    def name(self) -> str:
        return f"{self.uplink_mbit:g} Mbit/s up, {self.downlink_mbit:g} Mbit/s down, {self.rtt_ms:g} ms RTT"
