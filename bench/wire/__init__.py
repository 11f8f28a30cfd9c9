"""The wire: everything that crosses between a client and the server.

    ledger.py     byte counts per client and kind
    frames.py     the messages and their documented layout on a socket
    link.py       a client end and a server end, each with its own codecs; the only byte counter
    transport.py  the contract of a transport, and the TRANSPORTS registry
    inproc.py     transport `inproc`: the server object in this process
    tcp.py        transport `tcp`: frames over a socket to `bench serve` (bench/serve.py)
    testing.py    the conformance kit every registered transport passes
    linkmodel.py  what the traffic would cost in time on a modelled link
"""

from bench.wire.ledger import KINDS, Ledger
from bench.wire.link import ClientEnd, ServerEnd, exchanged_bytes, exchanged_state, label_dtype

__all__ = ["KINDS", "Ledger", "ClientEnd", "ServerEnd", "exchanged_bytes", "exchanged_state", "label_dtype"]
