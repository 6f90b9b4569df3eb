"""Dynamic batching (service/batching.py): merged runs give each request its own bits, queue
instead of a 503 (larger requests too, as batches of their own), and are counted in /metrics."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from bench.server import running_server
from lab import runtime
from lab.noise import gaussian_latents, seeded_generator
from lab.sampling import generator_drawer
from service.batching import Batcher, Batchers, BatchSettings, concatenated
from service.config import REPO_MODELS, ServiceConfig
from service.errors import ApiError
from service.guard import Guard
from tests.service.test_operations import metric_value

# (n, seed) of concurrent requests: sizes that straddle nothing in particular, one of a row.
REQUESTS = [(1, 11), (5, 12), (64, 13), (17, 14), (300, 15), (2, 16), (64, 17), (9, 18)]
NPY = {"Accept": "application/x-npy"}


def doubled(inputs: dict[str, np.ndarray], calls: list, gate: threading.Event | None = None):
    """A stand-in session run: records the rows of each run, waits for `gate`, doubles x."""
    calls.append(len(inputs["x"]))
    if gate is not None:
        gate.wait(5)
    return inputs["x"] * 2


def submit_all(batcher: Batcher, sizes: list[int], pause: float = 0.05) -> list:
    """Submit one request of each size from its own thread, `pause` s apart; the tickets."""
    tickets = [None] * len(sizes)

    def one(k: int) -> None:
        tickets[k] = batcher.submit({"x": np.full((sizes[k], 1), k, np.float32)})

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(sizes))]
    for thread in threads:
        thread.start()
        time.sleep(pause)
    return tickets, threads


def test_requests_that_arrive_during_a_run_merge_into_the_next():
    calls, gate = [], threading.Event()
    settings = BatchSettings(window_s=0, max_rows=100, max_queue=8)
    batcher = Batcher(lambda x: doubled(x, calls, gate), settings, Guard(1, 5), "m", 1)
    tickets, threads = submit_all(batcher, [1, 2, 3, 4])
    gate.set()
    for thread in threads:
        thread.join()
    assert calls == [1, 9]  # the first ran alone at once; the three behind it ran as one
    for k, ticket in enumerate(tickets):
        assert ticket.error is None
        np.testing.assert_array_equal(ticket.output, np.full((k + 1, 1), 2 * k, np.float32))


def test_a_batch_holds_at_most_max_rows():
    calls, gate = [], threading.Event()
    settings = BatchSettings(window_s=0, max_rows=5, max_queue=8)
    batcher = Batcher(lambda x: doubled(x, calls, gate), settings, Guard(1, 5), "m", 1)
    _, threads = submit_all(batcher, [1, 3, 2, 4, 1])
    gate.set()
    for thread in threads:
        thread.join()
    assert calls == [1, 5, 5]  # 3 + 2, then 4 + 1: in arrival order, never past 5 rows


def test_a_full_queue_is_503_with_retry_after():
    calls, gate = [], threading.Event()
    settings = BatchSettings(window_s=0, max_rows=100, max_queue=1)
    batcher = Batcher(lambda x: doubled(x, calls, gate), settings, Guard(1, 5), "m", 1)
    _, threads = submit_all(batcher, [1, 1])  # the second waits behind the running first
    with pytest.raises(ApiError) as refused:
        batcher.submit({"x": np.zeros((1, 1), np.float32)})
    gate.set()
    for thread in threads:
        thread.join()
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert "BATCH_QUEUE" in refused.value.detail


def test_a_failed_run_fails_every_request_of_its_batch_and_the_next_batch_runs():
    gate, runs = threading.Event(), []

    def run(inputs):
        runs.append(len(inputs["x"]))
        gate.wait(5)
        if len(runs) == 2:
            raise runtime.InferenceFailed("out of memory")
        return inputs["x"]

    settings = BatchSettings(window_s=0, max_rows=100, max_queue=8)
    batcher = Batcher(run, settings, Guard(1, 5), "m", 1)
    tickets, threads = submit_all(batcher, [1, 2, 3])
    gate.set()
    for thread in threads:
        thread.join()
    assert runs == [1, 5]
    assert tickets[0].error is None and tickets[0].output.shape == (1, 1)
    assert all(isinstance(t.error, runtime.InferenceFailed) for t in tickets[1:])
    assert batcher.submit({"x": np.ones((4, 1), np.float32)}).output.shape == (4, 1)


def test_the_window_gathers_requests_before_the_first_run():
    calls = []
    settings = BatchSettings(window_s=0.5, max_rows=100, max_queue=8)
    batcher = Batcher(lambda x: doubled(x, calls), settings, Guard(1, 5), "m", 1)
    _, threads = submit_all(batcher, [1, 2, 3], pause=0.02)
    for thread in threads:
        thread.join()
    assert calls == [6]


def test_a_larger_request_queues_and_runs_as_a_batch_of_its_own_in_its_turn():
    calls, gate = [], threading.Event()
    settings = BatchSettings(window_s=0, max_rows=5, max_queue=8, max_large=2)
    batcher = Batcher(lambda x: doubled(x, calls, gate), settings, Guard(1, 5), "m", 1)
    tickets, threads = submit_all(batcher, [1, 8, 2, 3])
    gate.set()
    for thread in threads:
        thread.join()
    assert calls == [1, 8, 5]  # the 8 rows alone, after the first and before the two behind it
    for k, ticket in enumerate(tickets):
        assert ticket.error is None and ticket.output.shape == (ticket.rows, 1)
        np.testing.assert_array_equal(ticket.output, np.full((ticket.rows, 1), 2 * k, np.float32))


def test_larger_requests_beyond_max_large_are_503_while_small_ones_still_queue():
    calls, gate = [], threading.Event()
    settings = BatchSettings(window_s=0, max_rows=5, max_queue=8, max_large=1)
    batcher = Batcher(lambda x: doubled(x, calls, gate), settings, Guard(1, 5), "m", 1)
    _, threads = submit_all(batcher, [1, 8])  # the first runs, the 8 rows wait
    with pytest.raises(ApiError) as refused:
        batcher.submit({"x": np.zeros((6, 1), np.float32)})
    small, more = submit_all(batcher, [2])
    gate.set()
    for thread in threads + more:
        thread.join()
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert "BATCH_LARGE_QUEUE" in refused.value.detail
    assert calls == [1, 8, 2] and small[0].error is None


def test_a_request_still_queued_at_the_deadline_is_504_and_leaves_the_queue():
    calls, gate = [], threading.Event()
    settings = BatchSettings(window_s=0, max_rows=100, max_queue=8)
    batcher = Batcher(lambda x: doubled(x, calls, gate), settings, Guard(1, 0.2), "m", 1)
    _, threads = submit_all(batcher, [1])  # runs, held by the gate past the deadline
    with pytest.raises(ApiError) as late:
        batcher.submit({"x": np.zeros((3, 1), np.float32)})
    gate.set()
    for thread in threads:
        thread.join()
    assert late.value.status == 504 and "REQUEST_DEADLINE" in late.value.detail
    assert batcher.submit({"x": np.ones((4, 1), np.float32)}).output.shape == (4, 1)
    assert calls == [1, 4]  # the late request's rows never ran, and left no rows queued


@pytest.mark.parametrize(
    "rows, max_large, taken",
    [(1024, 0, True), (1025, 0, False), (1025, 16, True), (8192, 16, True), (8193, 16, False)],
)
def test_batchers_take_requests_up_to_max_batch_while_larger_ones_may_queue(rows, max_large, taken):
    settings = BatchSettings(window_s=0, max_rows=1024, max_queue=64, max_large=max_large)
    assert Batchers(settings, Guard(1, 5)).takes(rows, max_batch=8192) is taken


def test_a_merged_batch_waits_for_a_guard_slot_instead_of_a_503():
    guard, release = Guard(max_in_flight=1, deadline_s=5), threading.Event()
    holder = threading.Thread(target=guard.run, args=(release.wait,), kwargs={"bounded": True})
    holder.start()
    time.sleep(0.05)
    waiting = ThreadPoolExecutor(1).submit(guard.run, lambda: 7, bounded=True, wait=True)
    time.sleep(0.1)
    assert not waiting.done()  # no 503: it waits for the slot
    release.set()
    holder.join()
    assert waiting.result(timeout=5) == 7


def test_a_slot_not_free_within_the_deadline_is_504():
    guard, release = Guard(max_in_flight=1, deadline_s=0.1), threading.Event()
    holder = threading.Thread(target=guard.run, args=(release.wait,), kwargs={"bounded": True})
    holder.start()
    time.sleep(0.05)
    with pytest.raises(ApiError) as late:
        guard.run(lambda: 7, bounded=True, wait=True)
    release.set()
    holder.join()
    assert late.value.status == 504


def served_graphs() -> list:
    """pytest params (ONNX file, card) of every graph a merged run may run: each bundled gan's
    (the float16 ones included) and each score model's denoiser (/v2 infer)."""
    found = []
    for card_path in sorted(REPO_MODELS.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        if card["kind"] not in ("gan", "score"):
            continue
        for version in card["versions"]:
            files = [version["file"]] + ([version["fp16"]["file"]] if "fp16" in version else [])
            for file in files:
                path = card_path.parent / file
                found.append(pytest.param(path, card, id=f"{card['name']}/{file}"))
    return found


def request_inputs(card: dict, n: int, seed: int) -> dict[str, np.ndarray]:
    """One request's inputs [n, ...] for a served graph: a gan's seeded latents (and a
    conditional gan's labels, drawn from its class mix), or a score denoiser's noisy x
    [n, *sample shape] with sigmas [n] between 0.01 and 10."""
    if card["kind"] == "gan":
        return generator_drawer(None, card, 8192).inputs(n, seed)
    generator = seeded_generator(seed)
    sigma = np.exp(generator.uniform(np.log(0.01), np.log(10), n)).astype(np.float32)
    shape = (n, *card["input"]["shape"][1:])
    x = (generator.standard_normal(shape) * sigma.reshape(-1, *[1] * (len(shape) - 1))).astype(
        np.float32
    )
    return {card["input"]["name"]: x, card["sigma_input"]["name"]: sigma}


def assert_merged_runs_give_each_request_its_bits(path: Path, card: dict, device: str) -> None:
    """One run over several requests' concatenated inputs, split back, equals each request's
    run alone, bit for bit (the graph's rows are independent)."""
    session = runtime.create_session(path, device)
    sizes = [(1, 3), (7, 4), (33, 5), (100, 6)]
    requests_ = [request_inputs(card, n, seed) for n, seed in sizes]
    alone = [runtime.run_rows(session, inputs, 8192) for inputs in requests_]
    merged = runtime.run_rows(session, concatenated(requests_), 8192)
    bounds = np.cumsum([0] + [n for n, _ in sizes])
    for k, samples in enumerate(alone):
        assert np.array_equal(merged[bounds[k] : bounds[k + 1]], samples), f"request {k}"


@pytest.mark.parametrize("path, card", served_graphs())
def test_every_served_graph_gives_each_request_its_own_bits_when_merged(path, card):
    assert_merged_runs_give_each_request_its_bits(path, card, "cpu")


def npy_samples(url: str, n_seed: tuple[int, int]) -> bytes:
    body = {"n": n_seed[0], "seed": n_seed[1]}
    response = requests.post(
        f"{url}/v1/models/ring8-gan/samples", json=body, headers=NPY, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.content


def concurrent_npy(url: str) -> dict[tuple[int, int], bytes]:
    """The NPY answers to REQUESTS, all sent at once."""
    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        answers = pool.map(lambda n_seed: npy_samples(url, n_seed), REQUESTS)
        return dict(zip(REQUESTS, answers, strict=True))


def v2_answer(url: str, z: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [
            {"name": "z", "shape": list(z.shape), "datatype": "FP32", "data": z.ravel().tolist()}
        ]
    }
    response = requests.post(f"{url}/v2/models/ring8-gan/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    return np.asarray(output["data"], np.float32).reshape(output["shape"])


@pytest.fixture(scope="module")
def servers(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """{"off": url, "on": url}: one worker each; "on" merges within a 0.3-s window and has one
    guard slot only, so that anything not merged or queued would be a 503."""
    folder = tmp_path_factory.mktemp("batching")
    settings = {
        "off": {"BATCHING": "off"},
        "on": {"BATCH_WINDOW_US": "300000", "MAX_IN_FLIGHT": "1", "THREADS": "16"},
    }
    with (
        running_server(model_repo, folder / "off.log", WEB_CONCURRENCY="1", **settings["off"]) as (
            off,
            _,
        ),
        running_server(model_repo, folder / "on.log", WEB_CONCURRENCY="1", **settings["on"]) as (
            on,
            _,
        ),
    ):
        yield {"off": off, "on": on}


def test_concurrent_requests_get_the_samples_they_get_alone(servers):
    before = requests.get(f"{servers['on']}/metrics", timeout=5).text
    merged = concurrent_npy(servers["on"])  # all 200: one guard slot, no 503
    after = requests.get(f"{servers['on']}/metrics", timeout=5).text
    alone = {n_seed: npy_samples(servers["off"], n_seed) for n_seed in REQUESTS}
    assert merged == alone
    labels = {"model": "ring8-gan", "version": "1"}
    runs = metric_value(after, "nv_inference_exec_count", **labels) - metric_value(
        before, "nv_inference_exec_count", **labels
    )
    assert 1 <= runs < len(REQUESTS)  # merged: fewer runs than requests
    merged_requests = metric_value(after, "inference_batch_requests_sum", model="ring8-gan")
    assert merged_requests - metric_value(
        before, "inference_batch_requests_sum", model="ring8-gan"
    ) == len(REQUESTS)
    assert metric_value(after, "inference_queue_duration_seconds_count", model="ring8-gan") > 0


def test_concurrent_large_requests_queue_instead_of_a_503(servers):
    """Requests above BATCH_MAX_ROWS (1024) on a server with one guard slot: each one waits for
    its own run (no 503), gets the samples it gets alone, and is counted in the queue metrics."""
    large = [(4096, 21 + k) for k in range(6)]
    metrics_url = f"{servers['on']}/metrics"
    before = requests.get(metrics_url, timeout=5).text
    with ThreadPoolExecutor(len(large)) as pool:
        answers = list(pool.map(lambda n_seed: npy_samples(servers["on"], n_seed), large))
    after = requests.get(metrics_url, timeout=5).text
    for n_seed, answer in zip(large, answers, strict=True):
        assert answer == npy_samples(servers["off"], n_seed)
    counted = "inference_queue_duration_seconds_count"
    queued = metric_value(after, counted, model="ring8-gan") - metric_value(
        before, counted, model="ring8-gan"
    )
    assert queued == len(large)


def test_concurrent_v2_inferences_get_what_they_get_alone(servers):
    latents = [gaussian_latents(n, 2, seed) for n, seed in REQUESTS]
    with ThreadPoolExecutor(len(latents)) as pool:
        merged = list(pool.map(lambda z: v2_answer(servers["on"], z), latents))
    for z, answer in zip(latents, merged, strict=True):
        assert np.array_equal(answer, v2_answer(servers["off"], z))


@pytest.mark.parametrize(
    "setting, raw",
    [
        ("BATCHING", "maybe"),
        ("BATCH_WINDOW_US", "-1"),
        ("BATCH_MAX_ROWS", "0"),
        ("BATCH_QUEUE", "0"),
        ("BATCH_LARGE_QUEUE", "-1"),
        ("REFERENCE_PASS_ENTRIES", "-1"),
    ],
)
def test_batching_settings_are_validated(setting, raw):
    with pytest.raises(ValueError, match=setting):
        ServiceConfig.from_env({setting: raw})
