#!/usr/bin/env python3
"""A minimal SMSC on the ``smpp34`` package's Rust-backed asyncio ``Server``: a baseline peer.

It accepts every bind and answers every submit_sm with accept(message_id); a submit asking for
a receipt (registered_delivery bit 0) also gets one deliver_sm receipt, sent at once with the
receipted_message_id and message_state TLVs, as our simulator does by default. ``bench_peers.py``
runs it in its own process to compare our simulator with it.

    .venv/bin/python tools/smpp34_smsc.py --port 2776

It prints ``listening port=N`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import time

import smpp34

MESSAGE_STATE_DELIVERED = 2
# TLV tags (smpp34 exports them as TLV_*, but only at run time: its stubs cannot say so).
RECEIPTED_MESSAGE_ID = 0x001E
MESSAGE_STATE = 0x0427


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _receipt_text(message_id: str, date: str) -> bytes:
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:{date} done date:{date} "
        "stat:DELIVRD err:000 text:"
    ).encode("ascii")


async def serve(host: str, port: int) -> None:
    server = smpp34.Server(host=host, port=port, system_id="SMPP34")
    await server.start()
    print(f"listening port={port}", flush=True)
    sessions: dict[str, smpp34.Esme] = {}
    # Each receipt is a future settled by its deliver_sm_resp; keep them referenced.
    in_flight: set[asyncio.Future[smpp34.DeliverSmResp]] = set()
    state_tlv = smpp34.Tlv(MESSAGE_STATE, bytes((MESSAGE_STATE_DELIVERED,)))
    number = 0
    date_second = -1
    date = ""
    while True:
        event = await server.next()
        if isinstance(event, smpp34.SubmitSmEvent):
            number += 1
            message_id = str(number)
            event.accept(message_id=message_id)
            esme = sessions.get(event.session_id)
            if event.registered_delivery & 1 and esme is not None:
                now = int(time.time())
                if now != date_second:
                    date_second = now
                    date = time.strftime("%y%m%d%H%M", time.gmtime(now))
                # ``deliver_sm`` returns a future (not a coroutine): ensure_future takes both.
                task = asyncio.ensure_future(
                    esme.deliver_sm(
                        event.source_addr,
                        _receipt_text(message_id, date),
                        source_addr=event.destination_addr,
                        source_addr_ton=event.dest_addr_ton,
                        source_addr_npi=event.dest_addr_npi,
                        dest_addr_ton=event.source_addr_ton,
                        dest_addr_npi=event.source_addr_npi,
                        esm_class=0x04,
                        tlvs=[
                            smpp34.Tlv(RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
                            state_tlv,
                        ],
                    )
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        elif isinstance(event, smpp34.Esme):
            sessions[event.session_id] = event
        elif isinstance(event, smpp34.Unbound):
            sessions.pop(event.session_id, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    args = parser.parse_args(argv)
    port = args.port or _free_port(args.host)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
