#!/usr/bin/env python3
"""Sends UDP datagrams too large for one frame to a VIP as IPv4 fragments built by scapy,
optionally in shuffled order, from several client addresses, and reports which real answered
each datagram (lb-testsrv answers "<name> <datagram>").

Prints one JSON object: {"sent": N, "answers": [{"src": ..., "seq": ..., "reals": [...]}]}.
A datagram nobody answered has "reals": []; one answered twice lists two names.
"""

import argparse
import json
import random
import select
import socket
import time

from scapy.all import IP, UDP, Raw, fragment


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vip", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--src", action="append", required=True, help="client address (repeat)")
    p.add_argument("--count", type=int, default=10, help="datagrams per client address")
    p.add_argument("--size", type=int, default=3000, help="UDP payload bytes")
    p.add_argument("--fragsize", type=int, default=1000)
    p.add_argument("--shuffle", action="store_true", help="send each datagram's fragments shuffled")
    p.add_argument("--wait", type=float, default=1.0, help="seconds to wait for each answer")
    a = p.parse_args()

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    rng = random.Random(7)
    answers = []
    for src in a.src:
        # A bound socket receives the answers (reassembled by this namespace's kernel).
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((src, 0))
        sport = rx.getsockname()[1]
        for seq in range(a.count):
            tag = f"{src}/{seq}/"
            payload = tag.encode().ljust(a.size, b".")
            dgram = IP(src=src, dst=a.vip, id=rng.randrange(1, 65536), flags=0) / UDP(
                sport=sport, dport=a.port
            ) / Raw(payload)
            frags = fragment(dgram, fragsize=a.fragsize)
            if a.shuffle:
                order = list(frags)
                while order == frags:
                    rng.shuffle(order)
                frags = order
            for f in frags:
                raw.sendto(bytes(f), (a.vip, 0))
            reals = []
            deadline = time.monotonic() + a.wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([rx], [], [], left)[0]:
                    break
                data = rx.recv(65535).decode(errors="replace")
                name, _, echoed = data.partition(" ")
                if echoed.startswith(tag):
                    reals.append(name)
                    # Wait a little longer for a second answer to the same datagram.
                    deadline = min(deadline, time.monotonic() + 0.2)
            answers.append({"src": src, "seq": seq, "reals": reals})
        rx.close()
    print(json.dumps({"sent": len(answers), "answers": answers}))


if __name__ == "__main__":
    main()
