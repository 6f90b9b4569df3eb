"""metrics.jsonl's time, throughput and memory keys (trainer.telemetry)."""

import dataclasses
import json
import time
from datetime import datetime

from trainer.telemetry import TIMING_KEYS, StepClock, reproducible_record
from trainer.training_loop import training_loop


def read_records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_every_record_carries_time_throughput_and_memory(trained_run, tiny_config):
    records = read_records(trained_run)
    assert all(set(TIMING_KEYS) <= set(record) for record in records)
    for record in records:
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0
        assert record["steps_per_s"] > 0 and record["peak_rss_mib"] > 0
        assert record["samples_per_s"] == record["steps_per_s"] * tiny_config.batch_size
        assert record["cuda_max_memory_mib"] is None  # a CPU run
    elapsed = [record["elapsed_s"] for record in records]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0


def test_a_resumed_run_counts_on_from_the_kept_elapsed_time(tiny_config, tmp_path):
    training_loop(dataclasses.replace(tiny_config, steps=10), tmp_path, progress=False)
    first = read_records(tmp_path)[-1]["elapsed_s"]
    training_loop(tiny_config, tmp_path, progress=False)
    later = [record["elapsed_s"] for record in read_records(tmp_path)[2:]]
    assert all(elapsed > first for elapsed in later)


def test_reproducible_record_drops_exactly_the_timing_keys():
    record = {"step": 5, "d_loss": 0.5, "verdict": "healthy"}
    timed = record | {key: 1.0 for key in TIMING_KEYS}
    assert reproducible_record(timed) == record


def test_throughput_leaves_out_the_time_of_an_evaluation():
    clock = StepClock(step=0, samples_per_step=4)
    time.sleep(0.25)  # an evaluation
    clock.exclude_since_record()
    timing = clock.record(10)
    assert timing["steps_per_s"] > 10 / 0.25
    assert timing["samples_per_s"] == 4 * timing["steps_per_s"]
