#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
#
# Polls a sluice /metrics endpoint and appends one line per sample to OUT:
#   <unix time> <rows_total (summed over partitions)> <bus_lag_messages> <dead_letters_total> <ingest_appended_total>
# until the file STOP exists. The macro benchmarks (e2e_vs_copy, reconnect_storm) use it
# to turn sluice_pipeline_rows_total into committed-readings-per-second and drain times,
# and `summarize` reads such a file back.
# Usage: metrics_sampler.py poll URL OUT STOP [INTERVAL]
#        metrics_sampler.py summarize OUT T_LOAD_START T_LOAD_END [TARGET_ROWS]
import sys
import time
import urllib.request

NAMES = ("sluice_pipeline_rows_total", "sluice_bus_lag_messages",
         "sluice_pipeline_dead_letters_total", "sluice_ingest_appended_total")


def scrape(url):
    with urllib.request.urlopen(url, timeout=2) as r:
        text = r.read().decode()
    vals = dict.fromkeys(NAMES, 0.0)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in vals:
            vals[name] += float(line.rsplit(" ", 1)[1])
    return vals


def poll(url, out, stop, interval):
    import os
    with open(out, "a", buffering=1) as f:
        while not os.path.exists(stop):
            t = time.time()
            try:
                v = scrape(url)
                f.write("%.3f %d %d %d %d\n" % (t, v[NAMES[0]], v[NAMES[1]], v[NAMES[2]], v[NAMES[3]]))
            except OSError:
                pass
            time.sleep(max(0.0, interval - (time.time() - t)))


def load(out):
    rows = []
    with open(out) as f:
        for line in f:
            p = line.split()
            if len(p) == 5:
                rows.append((float(p[0]), int(p[1]), int(p[2]), int(p[3]), int(p[4])))
    return rows


def at(samples, t):
    """rows_total of the last sample at or before t (first sample if none)."""
    best = samples[0]
    for s in samples:
        if s[0] <= t:
            best = s
    return best


def summarize(out, t0, t1, target):
    s = load(out)
    if not s:
        print("no samples")
        return
    final = s[-1][1]
    # first sample at which rows stopped growing (== final), or reached the target
    done = next((x for x in s if x[1] >= (target if target else final)), s[-1])
    warm = min(t0 + 5.0, (t0 + t1) / 2)
    a, b = at(s, warm), at(s, t1)
    sustained = (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0
    peak = 0.0
    for i in range(len(s)):
        j = next((k for k in range(i, len(s)) if s[k][0] - s[i][0] >= 5.0), None)
        if j is not None:
            peak = max(peak, (s[j][1] - s[i][1]) / (s[j][0] - s[i][0]))
    first = next((x for x in s if x[1] > 0), s[-1])
    print("rows_total_final=%d" % final)
    print("sustained_rows_per_s=%.0f" % sustained)          # during the load, after 5 s warm-up
    print("peak5s_rows_per_s=%.0f" % peak)
    print("overall_rows_per_s=%.0f" % (final / (done[0] - t0) if done[0] > t0 else 0))  # load start to all stored
    print("first_row_after_s=%.2f" % (first[0] - t0))
    # from the first committed row to all stored: excludes the pipeline's first-contact
    # device registration (one transaction per new device) before its first batch
    print("from_first_row_rows_per_s=%.0f" % (final / (done[0] - first[0]) if done[0] > first[0] else 0))
    print("all_stored_after_s=%.2f" % (done[0] - t0))
    print("drain_after_load_s=%.2f" % max(0.0, done[0] - t1))
    print("max_bus_lag_messages=%d" % max(x[2] for x in s))
    print("dead_letters=%d" % s[-1][3])


if __name__ == "__main__":
    if sys.argv[1] == "poll":
        poll(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 0.5)
    elif sys.argv[1] == "summarize":
        summarize(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]),
                  int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    else:
        sys.exit("usage: metrics_sampler.py poll|summarize ...")
