"""One percentile rule (nearest rank) for the stats' histograms and the benchmarks' samples."""
from __future__ import annotations

import math

from jobs.task_stats import bucket_of, nearest_rank, percentile, percentiles


def test_nearest_rank():
    assert [nearest_rank(0.5, n) for n in (1, 2, 3, 10)] == [1, 1, 2, 5]
    assert nearest_rank(0.95, 20) == 19 and nearest_rank(0.99, 20) == 20
    assert nearest_rank(0.5, 0) == 1


def test_a_sample_and_its_histogram_agree_on_the_bucket():
    sample = [0.01 * i for i in range(1, 201)]
    histogram: dict[int, int] = {}
    for value in sample:
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert bucket_of(percentile(sample, q)) == bucket_of(percentiles(histogram)[name])
    assert math.isnan(percentile([], 0.5))
