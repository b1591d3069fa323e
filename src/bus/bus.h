// SPDX-License-Identifier: Apache-2.0
//
// The abstract bus between the broker (producer) and the pipeline (consumer). The
// broker appends each ingest-matching PUBLISH and acknowledges it to the device only
// when the bus says the record is durable (docs/promises.md, promise 1); the pipeline reads
// records from an offset and commits named cursors. Backends: the embedded WAL
// (bus/wal/wal.h, the default) and Kafka (bus/kafka/kafka.h). Callers never see the
// backend type.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "bus/errc.h"

namespace sluice::bus {

// What the broker appends for each ingest-matching PUBLISH (the bus owns its serialisation).
struct message {
    int64_t receive_time_ms = 0;  // broker receive time, Unix ms
    std::string client_id;
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    // The PUBLISH's packet id when its publisher has a persistent session, else 0. A
    // restarted broker reads it back to recognise that client's resends (DUP=1) of
    // messages already in the log (broker/resend_window.h).
    uint16_t packet_id = 0;

    bool operator==(const message&) const = default;
};

// A message with its offset. Offsets are dense per partition and start at 0.
struct record {
    uint64_t offset = 0;
    message msg;
};

// Called exactly once per append, on a bus-owned thread (except after stop(), see
// bus::append), with the record's offset or the reason it was not stored. It runs on
// the partition's writer thread: keep it short (post to your event loop), never block
// in it and never call append() and wait for that append's callback from inside it.
using append_callback = std::function<void(result<uint64_t> offset)>;

// One consumer's sequential view of one partition. Not thread-safe: one thread polls.
class reader {
public:
    virtual ~reader() = default;
    // Appends up to max_records durable records (offset >= position()) to `out`, in
    // offset order, waiting up to `wait` when none is available yet.
    // Returns: the number appended (0 on timeout).
    //   errc::not_found  - position() is below the oldest retained offset (deleted).
    //   errc::corruption - position() is inside a quarantined range; open a new
    //                      reader past it if the operator accepts the loss.
    //   errc::io_error   - reading the segment failed.
    //   errc::closed     - the bus was stopped.
    virtual result<size_t> poll(std::vector<record>& out, size_t max_records, std::chrono::milliseconds wait) = 0;
    virtual uint64_t position() const = 0;  // next offset poll() returns
};

class bus {
public:
    virtual ~bus() = default;
    virtual uint32_t partitions() const = 0;

    // Thread-safe; called from many event-loop threads. `done` runs once, on a
    // bus-owned thread, when the record is durable per the durability mode (or failed:
    // quota_exceeded / io_error / closed). Never blocks the caller on disk I/O: the
    // caller only takes a short mutex to enqueue. After stop(), `done` runs inline
    // with errc::closed. REQUIRES: partition < partitions().
    virtual void append(uint32_t partition, message m, append_callback done) = 0;

    // True while the log is at/over its size quota (the broker stops reading
    // publishers' sockets). Clears by itself when cursors advance and segments go.
    virtual bool over_quota() const = 0;

    // Bytes that may still be appended (counted as append_cost()) before appends fail
    // with errc::quota_exceeded. A caller that reserves append_cost() of each message
    // against this headroom before appending, and holds the reservation until the
    // callback ran, is never refused for the quota (broker/ingest_budget.h does so).
    // Backends without a size quota keep the default: unbounded.
    virtual uint64_t quota_headroom() const { return UINT64_MAX; }
    // Upper bound of what appending a message adds to the log's size (record framing and a
    // possible new segment header included).
    static uint64_t append_cost(size_t client_id_bytes, size_t topic_bytes, size_t payload_bytes) {
        return uint64_t{client_id_bytes} + topic_bytes + payload_bytes + 96;
    }

    // Returns: a reader positioned at from_offset (which may equal the end: the reader
    // then waits for new records). errc::invalid_argument for a bad partition or an
    // offset beyond the end; errc::not_found when from_offset was already deleted.
    virtual result<std::unique_ptr<reader>> open_reader(uint32_t partition, uint64_t from_offset) = 0;

    // Named cursors, stored durably (on return the cursor survives a crash). The WAL
    // deletes a segment only when every cursor has passed it.
    // Returns: errc::invalid_argument (bad partition, offset beyond the durable end,
    // empty name), errc::io_error.
    virtual result<void> commit_cursor(std::string_view consumer, uint32_t partition, uint64_t next_offset) = 0;
    virtual result<std::optional<uint64_t>> cursor(std::string_view consumer, uint32_t partition) = 0;

    // Partition ownership among the processes of one consumer group (Kafka: a consumer
    // group; partitions move on join, leave and crash). `assigned` runs with partitions
    // this process now owns; `revoked` with partitions it must stop consuming, and the
    // rebalance waits until it returns, so stop writing them inside it. Both run one at a
    // time on a bus-owned thread. Owning a partition is a hint, not a lock: writers still
    // fence each other in the store (compare-and-set of the stored offset). Destroying
    // the returned object leaves the group. The default, for backends without groups
    // (the WAL), assigns every partition at once and revokes them on destruction.
    using partitions_callback = std::function<void(const std::vector<uint32_t>&)>;
    class membership {
    public:
        virtual ~membership() = default;
    };
    // By value: overrides keep both callbacks (kafka.cc).
    virtual result<std::unique_ptr<membership>> join_group(
        std::string_view group,
        partitions_callback assigned,  // NOLINT(performance-unnecessary-value-param)
        partitions_callback revoked) {
        (void)group;
        struct all_partitions final : membership {
            partitions_callback revoked;
            std::vector<uint32_t> owned;
            ~all_partitions() override { revoked(owned); }
        };
        auto m = std::make_unique<all_partitions>();
        for (uint32_t p = 0; p < partitions(); ++p)
            m->owned.push_back(p);
        m->revoked = std::move(revoked);
        assigned(m->owned);
        return std::unique_ptr<membership>(std::move(m));
    }

    // Who owns what in a consumer group, as the cluster tells it (GET /api/cluster,
    // `sluice status`). `source` says where the answer comes from: "describe-groups"
    // (Kafka's group coordinator), "offset-metadata" (the owner each worker records with
    // its committed-offset hints, for brokers that cannot describe groups: librdkafka's
    // mock cluster), or "none" for backends without groups (the WAL: the process that
    // joined owns every partition). `ends` holds each partition's end offset (Kafka: the
    // high watermark, asked now).
    struct group_member {
        std::string member_id;
        std::string client_id;
        std::string host;
        std::vector<uint32_t> partitions;
        int64_t seen_ms = 0;  // "offset-metadata": when it last recorded its ownership (Unix ms)
    };
    struct group_description {
        std::string source = "none";
        std::string state;  // "describe-groups": Stable, PreparingRebalance, Empty, ...
        std::vector<group_member> members;
        std::vector<uint64_t> ends;
    };
    virtual result<group_description> describe_group(std::string_view group) {
        (void)group;
        group_description d;
        for (uint32_t p = 0; p < partitions(); ++p)
            d.ends.push_back(get_stats(p).durable_end);
        return d;
    }

    // For lag metrics and operations.
    struct stats {
        uint64_t durable_end = 0;            // next offset to be assigned; all below are acknowledged/readable
        int64_t newest_receive_time_ms = 0;  // receive time of the newest such record (0 if none)
        uint64_t bytes_on_disk = 0;          // this partition's segment bytes
        uint64_t fsyncs = 0;                 // fdatasync calls on this partition's segments
        uint64_t appends = 0;                // successful appends since open
        uint64_t oldest_offset = 0;          // first offset still on disk
        uint64_t quarantined_segments = 0;   // segments renamed *.corrupt since open
    };
    virtual stats get_stats(uint32_t partition) const = 0;

    // Flushes, completes or fails all pending appends, joins threads, wakes readers
    // (which then return errc::closed). Idempotent.
    virtual void stop() = 0;
};

}  // namespace sluice::bus
