#!/usr/bin/python3
"""
The gRPC load generator of `bench protocols`: a closed loop of ModelInfer calls from gRPC's C core
(Debian's python3-grpcio), the most efficient gRPC client at hand; the request is encoded once and
answers are not decoded, as on the HTTP side.

    grpc_load.py HOST:PORT MESSAGE_FILE CLIENTS SECONDS  ->  {"perS", "p50Ms", "p99Ms", "errors"}
"""
import json
import sys
import threading
import time

import grpc

target, path, clients, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
message = open(path, "rb").read()
channel = grpc.insecure_channel(
    target, options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
)
call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer", lambda b: b, lambda b: b)


def run(duration, record):
    """`clients` calls in flight at all times (futures: no thread per client) for `duration` seconds."""
    latencies, errors = [], [0]
    lock, done = threading.Lock(), threading.Event()
    end = time.perf_counter() + duration
    active = [clients]

    def start():
        t = time.perf_counter()
        future = call.future(message)
        future.add_done_callback(lambda f: finish(f, t))

    def finish(future, t):
        now = time.perf_counter()
        with lock:
            if record:
                if future.exception() is None:
                    latencies.append((now - t) * 1000)
                else:
                    errors[0] += 1
            if now >= end:
                active[0] -= 1
                if active[0] == 0:
                    done.set()
                return
        start()

    began = time.perf_counter()
    for _ in range(clients):
        start()
    done.wait()
    return latencies, errors[0], time.perf_counter() - began


run(1.0, False)  # warm the channel and the path
latencies, errors, elapsed = run(seconds, True)
latencies.sort()
at = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None
print(json.dumps({"perS": len(latencies) / elapsed, "p50Ms": at(0.5), "p99Ms": at(0.99), "errors": errors}))
