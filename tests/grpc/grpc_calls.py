#!/usr/bin/python3
"""
Calls gpulet's gRPC service as an outside client would: Debian's grpcio (gRPC's C core, not the grpc-js
library the server runs) with message classes protoc generates from the .proto gpulet ships.

    grpc_calls.py PROTO HOST:PORT < calls.json > results.json

calls.json is a list of {"method", "request", "timeout_s"?, "metadata"?: {k: v}, "cancel_after_s"?};
a ModelStreamInfer call's "request" is a list of requests. Messages are in protobuf's JSON mapping (bytes
as base64, 64-bit integers as strings). Each result is {"ok": true, "response": ...} ("responses" for a
stream) or {"ok": false, "code": "NOT_FOUND", "details": "..."}.
"""
import json
import os
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import json_format


def load_messages(proto):
    out = tempfile.mkdtemp(prefix="gpulet-grpc-")
    subprocess.run(
        ["protoc", f"-I{os.path.dirname(os.path.abspath(proto))}", f"--python_out={out}", os.path.basename(proto)],
        check=True,
    )
    sys.path.insert(0, out)
    import inference_pb2  # noqa: E402  (generated just now)

    return inference_pb2


def as_dict(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def main():
    proto, target = sys.argv[1], sys.argv[2]
    pb = load_messages(proto)
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    channel = grpc.insecure_channel(
        target,
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    results = []
    for call in json.load(sys.stdin):
        method = service.methods_by_name[call["method"]]
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        path = f"/inference.GRPCInferenceService/{method.name}"
        metadata = list((call.get("metadata") or {}).items())
        timeout = call.get("timeout_s")
        try:
            if method.client_streaming:
                stub = channel.stream_stream(path, request_type.SerializeToString, response_type.FromString)
                requests = [json_format.ParseDict(r, request_type()) for r in call["request"]]
                responses = stub(iter(requests), timeout=timeout, metadata=metadata)
                results.append({"ok": True, "responses": [as_dict(r) for r in responses]})
            else:
                stub = channel.unary_unary(path, request_type.SerializeToString, response_type.FromString)
                request = json_format.ParseDict(call.get("request", {}), request_type())
                if "cancel_after_s" in call:
                    future = stub.future(request, timeout=timeout, metadata=metadata)
                    try:
                        response = future.result(timeout=call["cancel_after_s"])
                        results.append({"ok": True, "response": as_dict(response)})  # answered in time
                    except grpc.FutureTimeoutError:
                        future.cancel()
                        results.append({"ok": False, "code": "CANCELLED", "details": "cancelled by the client"})
                    continue
                response = stub(request, timeout=timeout, metadata=metadata)
                results.append({"ok": True, "response": as_dict(response)})
        except grpc.RpcError as e:
            results.append({"ok": False, "code": e.code().name, "details": e.details()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
