// SPDX-License-Identifier: Apache-2.0
//
// What a simulated device produces (see worker.h): readings stamped now, batched like
// firmware with edge/sluice_edge.h (or as JSON batches, or one raw message per tick), and
// queued for the connection's inflight window, dropped and counted when the queue is full.
#include <cstdio>
#include <string>
#include <string_view>

#include "base/assert.h"
#include "worker.h"

namespace sluice::loadgen {

void worker::enqueue(connection& c, pending m) {
    if (c.queue.size() >= s_.opts.max_queue) {
        stats.dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    c.queue.push_back(std::move(m));
    stats.queued.fetch_add(1, std::memory_order_relaxed);
    send_queued(c);
}

void worker::flush_batch(connection& c) {
    pending m;
    m.device = c.index;
    if (c.encoder) {
        const auto p = c.encoder->finish();
        if (p.size == 0) return;
        const auto t = decode_binary_truth(std::string_view(reinterpret_cast<const char*>(p.data), p.size));
        SLUICE_CHECK(t.has_value(), "the edge encoder produced a payload we cannot parse");
        m.seq = t->seq;
        m.readings = t->readings;
        m.payload.assign(reinterpret_cast<const char*>(p.data), p.size);
    } else if (s_.opts.format == payload_kind::json) {
        if (c.json_count == 0) return;
        m.seq = c.next_seq++;
        m.readings = c.json_count;
        m.payload = "{\"seq\":" + std::to_string(m.seq) + ",\"readings\":[" + c.json_batch + "]}";
        c.json_batch.clear();
        c.json_count = 0;
    } else {
        return;
    }
    enqueue(c, std::move(m));
}

bool worker::batch_due(const connection& c, int64_t now_ms) const {
    if (c.encoder) return c.encoder->should_flush(static_cast<uint64_t>(now_ms), s_.opts.flush_ms);
    if (s_.opts.format == payload_kind::json) {
        return c.json_count > 0 && now_ms - c.json_first_ms >= static_cast<int64_t>(s_.opts.flush_ms);
    }
    return false;
}

// One reading (binary/json) or one message (raw), stamped now.
void worker::produce(connection& c) {
    const int64_t now_ns = unix_now_ns();
    const int64_t now_ms = now_ns / 1'000'000;
    stats.readings_generated.fetch_add(1, std::memory_order_relaxed);
    const uint32_t metric = static_cast<uint32_t>(c.reading_no % s_.opts.metrics) + 1;
    const double value = 20.0 + static_cast<double>((c.reading_no * 37 + c.index) % 1000) / 100.0;
    ++c.reading_no;
    if (s_.opts.format == payload_kind::raw) {
        pending m;
        m.device = c.index;
        m.seq = c.next_seq++;
        m.readings = 1;
        encode_raw(truth{c.index, m.seq, now_ns}, s_.opts.payload_size, m.payload);
        enqueue(c, std::move(m));
        return;
    }
    // Firmware-like batching: add the reading, then publish the batch when it is half
    // full (flush_bytes) or its oldest reading is flush_ms old.
    if (c.encoder) {
        auto st = c.encoder->add_rounded(metric, static_cast<uint64_t>(now_ms), value, 2);
        if (st == sluice_edge::add_status::full || st == sluice_edge::add_status::bad_time) {
            flush_batch(c);
            st = c.encoder->add_rounded(metric, static_cast<uint64_t>(now_ms), value, 2);
        }
        if (st == sluice_edge::add_status::added_flush || batch_due(c, now_ms)) flush_batch(c);
        return;
    }
    char item[96];
    const int n = std::snprintf(item, sizeof item, "%s{\"ts\":%lld,\"m%u\":%.2f}", c.json_count ? "," : "",
                                static_cast<long long>(now_ms), metric, value);
    if (c.json_count == 0) c.json_first_ms = now_ms;
    c.json_batch.append(item, static_cast<size_t>(n));
    ++c.json_count;
    if (c.json_batch.size() + 32 >= s_.opts.flush_bytes || batch_due(c, now_ms)) flush_batch(c);
}

}  // namespace sluice::loadgen
