"""The servers bench/peers.py measures this service against, one script per peer, each run in
that peer's own virtualenv (numpy, onnxruntime and jsonschema beside the peer, the repository
root on PYTHONPATH): `python -m bench.peer_servers.serve_<peer> --port P --model M --workers W`.
"""
