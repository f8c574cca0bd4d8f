#!/usr/bin/env python3
"""The churn soak's API server (scripts/soak-churn.sh): GET /api/v1/pods lists the pods it
holds, and with watch=true streams their ADDED and DELETED events from the resourceVersion
asked for; POST /soak/pods adds one ({"name", "uid", "container_id"}), DELETE
/soak/pods/NAME deletes it, and GET /soak/delivered says up to which resourceVersion the
events have been written to a watch (so the soak starts a pod's process only once the
agent has been told of the pod, as a kubelet starts containers long after the pod exists).
Serves on 127.0.0.1:PORT (the first argument) over plain HTTP."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE = "soak-node"
NAMESPACE = "soak"

lock = threading.Condition()
pods = {}  # name -> pod object
events = []  # (resourceVersion, type, pod object), in order
version = 1000
delivered = 0  # the newest resourceVersion written to a watch stream


def pod_object(name, uid, container_id, rv):
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid, "resourceVersion": str(rv),
                     "creationTimestamp": "2026-12-01T00:00:00Z", "labels": {"app": "churn"}},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "registry.example/churn:1.0"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.17", "hostIP": "192.168.1.10",
                   "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                          "image": "registry.example/churn:1.0", "imageID": "registry.example/churn@sha256:00",
                                          "containerID": "containerd://" + container_id, "started": True,
                                          "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}}]},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        global delivered
        if self.path == "/soak/delivered":
            with lock:
                return self.send_json(200, {"resourceVersion": delivered, "latest": version})
        if not self.path.startswith("/api/v1/pods"):
            return self.send_json(404, {})
        query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
        if query.get("watch") != "true":
            with lock:
                body = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(version)},
                        "items": list(pods.values())}
            return self.send_json(200, body)
        since = int(query.get("resourceVersion") or 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = since
        try:
            while True:
                with lock:
                    lock.wait_for(lambda: events and events[-1][0] > sent, timeout=30)
                    pending = [e for e in events if e[0] > sent]
                for rv, kind, obj in pending:
                    line = (json.dumps({"type": kind, "object": obj}) + "\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    sent = rv
                self.wfile.flush()
                with lock:
                    delivered = max(delivered, sent)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        global version
        if self.path != "/soak/pods":
            return self.send_json(404, {})
        spec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            version += 1
            obj = pod_object(spec["name"], spec["uid"], spec["container_id"], version)
            pods[spec["name"]] = obj
            events.append((version, "ADDED", obj))
            lock.notify_all()
        self.send_json(201, obj)

    def do_DELETE(self):
        global version
        name = self.path.rpartition("/")[2]
        with lock:
            obj = pods.pop(name, None)
            if obj is None:
                return self.send_json(404, {})
            version += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(version)
            events.append((version, "DELETED", obj))
            lock.notify_all()
        self.send_json(200, obj)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
