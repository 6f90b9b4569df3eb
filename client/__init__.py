"""A small Python client for the service's /v1 API: standard library + numpy, no torch, no
requests.

    from client import Client
    api = Client("http://localhost:8000")
    drawn = api.samples("ring8-gan", n=2500, seed=1)     # Samples(array, seed, version)
    report = api.diagnose(drawn.array, reference="ring8")  # or a path: "batch.npy", "x.csv"
    print(report["verdict"]["status"])

Work past the service's request deadline runs as a job (Prefer: respond-async):

    job = api.samples_job("stacked-digits-edm", n=26_000, seed=7)
    api.wait(job["id"], progress=lambda s: print(s["progress"]["fraction"]))
    drawn = api.job_result(job["id"])                    # Samples, as from api.samples

Every failed call raises ClientError with the server's problem+json (status, title, detail).
The command line is `python -m client` (client/__main__.py).
"""

from client.api import Client, ClientError, Samples

__all__ = ["Client", "ClientError", "Samples"]
