// SPDX-License-Identifier: Apache-2.0
//
// The shard's half of session spools (session_spool.h): appending what a persistent
// session queues, reading it back a chunk at a time as its client takes it, and keeping
// the session's spool_record in the state store in step.
#include <algorithm>

#include "base/log.h"
#include "broker/ack_barrier.h"
#include "broker/broker.h"
#include "broker/session_spool.h"
#include "broker/shard.h"

namespace sluice::broker {
namespace {

// Read back this much at a time: enough for a full window of small messages, little
// memory per connected session.
constexpr size_t k_spool_chunk_bytes = size_t{256} * 1024;
// An emptied file is reused while smaller than this, else replaced by a new one, so that
// a busy session's file does not grow without end and an idle one causes no file churn.
constexpr uint64_t k_spool_reuse_bytes = 16ull * 1024 * 1024;

}  // namespace

bool shard::uses_spool(const session& s) const {
    return broker_.spool() != nullptr && (s.persisted || s.spool.file_id != 0);
}

void shard::spool_append(session& s, outgoing&& out, uint64_t bytes, const ack_barrier_ptr& barrier) {
    spool_state& sp = s.spool;
    spool_directory& dir = *broker_.spool();
    auto fail = [&](const char* what) {
        const uint64_t n = shard_stats::count(stats_.dropped_spool_error);
        if (shard_stats::log_worthy(n)) {
            SLUICE_ERROR("broker", "cannot %s the spool of %s in %s: dropping its QoS %u messages (%llu so far)", what,
                         s.client_id().c_str(), dir.dir().c_str(), out.qos, static_cast<unsigned long long>(n));
        }
        if (barrier) barrier->fail();  // the publisher is not told it was kept
    };
    if (!sp.file && sp.file_id != 0) {
        auto f = dir.open_file(sp.file_id);
        if (!f) {
            spool_retire(s);
        } else {
            sp.file = std::move(f).value();
        }
    }
    if (!sp.file) {
        auto f = dir.create();
        if (!f) return fail("create");
        sp.file = std::move(f).value();
        sp.file_id = sp.file->id();
        sp.read_offset = sp.loaded_offset = sp.end_offset = k_spool_header_size;
    }
    persist::session_message_record r;
    r.order = out.order;
    r.st = persist::session_message_record::state::queued;
    r.qos = out.qos;
    r.retain = out.retain;
    r.subscription_ids = std::move(out.subscription_ids);
    r.message = persistence::to_record(*out.msg, now_ms_);
    spool_scratch_.clear();
    encode_spool_entry(spool_scratch_, r);
    if (auto w = sp.file->write_at(sp.end_offset, spool_scratch_); !w) return fail("write");
    dir.written(sp.file);
    sp.end_offset += spool_scratch_.size();
    ++sp.count;
    sp.bytes += bytes;
    sp.last_order = out.order;
    broker_.add_queued_bytes(bytes);
    // An offline session holds no descriptor: thousands of them may queue (the directory's
    // list of files to sync keeps this one open until then).
    if (s.conn == nullptr) sp.file.reset();
    if (spool_scratch_.capacity() > 4 * k_spool_chunk_bytes) std::string().swap(spool_scratch_);
    if (s.persisted) {
        spool_save(s);
        hold_until_durable(barrier);
    }
}

bool shard::spool_load(session& s) {
    spool_state& sp = s.spool;
    while (sp.loaded_offset < sp.end_offset) {
        if (!sp.file) {
            auto f = broker_.spool()->open_file(sp.file_id);
            if (!f) {
                SLUICE_ERROR("broker", "the spool of %s cannot be opened: %s", s.client_id().c_str(),
                             f.error().message().c_str());
                spool_retire(s);
                return false;
            }
            sp.file = std::move(f).value();
        }
        auto entries = read_spool(*sp.file, sp.loaded_offset, sp.end_offset, k_spool_chunk_bytes);
        if (!entries) {
            // Durable data is gone or damaged: what is left of this spool cannot be sent.
            SLUICE_ERROR("broker", "the spool of %s cannot be read: %s", s.client_id().c_str(),
                         entries.error().message().c_str());
            spool_retire(s);
            return false;
        }
        bool loaded_any = false;
        for (auto& e : *entries) {
            persist::session_message_record& r = e.record;
            const uint64_t bytes = r.message.topic.size() + r.message.payload.size();
            sp.loaded_offset = e.end_offset;
            if (r.order <= sp.skip_through) {
                // Handed to the client before a restart: its inflight record says so.
                --sp.count;
                sp.bytes -= bytes;
                broker_.sub_queued_bytes(bytes);
                sp.read_offset = e.end_offset;
                continue;
            }
            outgoing out;
            out.qos = r.qos;
            out.retain = r.retain;
            out.subscription_ids = std::move(r.subscription_ids);
            out.order = r.order;
            out.spool_end = e.end_offset;
            out.msg = persistence::to_message(std::move(r.message), now_ms_);
            s.queue.push_back(std::move(out));
            ++sp.loaded;
            loaded_any = true;
        }
        if (loaded_any) return true;
    }
    if (sp.count == 0 && sp.file_id != 0) spool_save(s);  // skipped records only
    return false;
}

void shard::spool_taken(session& s, uint64_t end, uint64_t bytes) {
    spool_state& sp = s.spool;
    SLUICE_CHECK(sp.loaded > 0 && sp.count > 0 && end > sp.read_offset, "spool out of step");
    --sp.loaded;
    --sp.count;
    sp.bytes -= bytes;
    sp.read_offset = end;
    broker_.sub_queued_bytes(bytes);
}

void shard::spool_save(session& s) {
    if (!s.persisted) return;
    spool_state& sp = s.spool;
    if (sp.count == 0 && sp.end_offset >= k_spool_reuse_bytes) {
        spool_retire(s);
        return;
    }
    broker_.durable().save_spool(s);
}

void shard::spool_unload(session& s) {
    spool_state& sp = s.spool;
    // Spooled entries are the queue's last (what the session queued before it had a spool
    // comes first), so they come off its back.
    for (; sp.loaded > 0; --sp.loaded) {
        SLUICE_CHECK(!s.queue.empty() && s.queue.back().spool_end != 0, "spool out of step");
        s.queue.pop_back();
    }
    sp.loaded_offset = sp.read_offset;
    if (s.conn == nullptr) sp.file.reset();  // see spool_append
}

void shard::spool_retire(session& s) {
    spool_state& sp = s.spool;
    const uint64_t id = sp.file_id;
    spool_unload(s);
    if (sp.count > 0) {  // the file cannot be opened or read: what it held is lost
        stats_.add(stats_.dropped_spool_error, sp.count);
        broker_.sub_queued_bytes(sp.bytes);
        SLUICE_ERROR("broker", "%llu queued messages of %s lost with its spool file %llu",
                     static_cast<unsigned long long>(sp.count), s.client_id().c_str(),
                     static_cast<unsigned long long>(id));
    }
    spool_state fresh;
    fresh.last_order = sp.last_order;
    sp = fresh;
    if (id == 0) return;
    if (s.persisted) broker_.durable().erase_spool(s.client_id());
    spool_directory* dir = broker_.spool();
    broker_.durable().after_durable([dir, id] { dir->remove(id); });
}

void shard::spool_release(session& s) {
    spool_state& sp = s.spool;
    if (sp.file_id == 0) return;
    const uint64_t id = sp.file_id;
    sp = spool_state{};
    spool_directory* dir = broker_.spool();
    // The session's records were erased by the caller: the file goes once that is durable.
    broker_.durable().after_durable([dir, id] { dir->remove(id); });
}

void shard::spool_restore(session& s, const persist::spool_record& r) {
    spool_state& sp = s.spool;
    sp.file_id = r.file_id;
    sp.read_offset = sp.loaded_offset = r.read_offset;
    sp.end_offset = r.end_offset;
    sp.count = r.count;
    sp.bytes = r.bytes;
    sp.last_order = r.last_order;
    for (const auto& [id, e] : s.inflight)
        sp.skip_through = std::max(sp.skip_through, e.order);
    s.restore_order(r.last_order);
    broker_.add_queued_bytes(r.bytes);
}

}  // namespace sluice::broker
