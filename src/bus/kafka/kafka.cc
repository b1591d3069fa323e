// SPDX-License-Identifier: Apache-2.0
//
// librdkafka behind bus/bus.h. One producer handle (also used for metadata and watermark
// queries), one consumer handle per reader (assign(), no group: the offset to read from
// comes from the database), and one group consumer per join_group() that only tracks
// partition ownership (its partitions stay paused) and carries the committed-offset hint,
// whose metadata names the owner (describe_group's answer when the brokers cannot
// describe groups).
#include "bus/kafka/kafka.h"

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "base/clock.h"
#include "base/endian.h"
#include "base/log.h"
#include "base/thread_annotations.h"
#include "bus/errc.h"

namespace sluice::bus {
namespace {

using namespace std::chrono_literals;

constexpr const char* k_header_topic = "mqtt_topic";
constexpr const char* k_header_qos = "mqtt_qos";
// Two bytes, big-endian; present only when bus::message::packet_id != 0.
constexpr const char* k_header_packet_id = "mqtt_packet_id";

struct partition_state {
    std::atomic<uint64_t> high{0};  // high watermark: next offset Kafka assigns
    std::atomic<uint64_t> low{0};   // oldest offset still in Kafka
    std::atomic<int64_t> newest_receive_ms{0};
    std::atomic<uint64_t> appends{0};
};

struct pending {
    append_callback done;
    size_t bytes;
    uint32_t partition;
    int64_t receive_time_ms;
};

void atomic_max(std::atomic<uint64_t>& a, uint64_t v) {
    uint64_t cur = a.load();
    while (cur < v && !a.compare_exchange_weak(cur, v)) {
    }
}

// Applies `props` to `conf`; false (logged) for an unknown key or a bad value.
bool apply_settings(rd_kafka_conf_t* conf, const std::map<std::string, std::string>& props) {
    char err[512];
    for (const auto& [k, v] : props) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
            SLUICE_ERROR("kafka", "setting %s: %s", k.c_str(), err);
            return false;
        }
    }
    return true;
}

// How often a group member records its ownership again (commit metadata), and how old a
// record may be before describe_group stops believing it: the worker died or left, and
// no live member took the partition yet.
constexpr auto k_owner_refresh = 2s;
// Sluice's default session.timeout.ms for the pipeline's group.
constexpr int64_t k_session_timeout_ms = 10'000;

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "?";
    return buf;
}

// The ownership record in a committed offset's metadata: "sluice1", Unix ms, host, client
// id, member id, tab-separated.
std::string owner_record(int64_t now_ms, const std::string& host, const std::string& client_id,
                         const std::string& member_id) {
    return "sluice1\t" + std::to_string(now_ms) + "\t" + host + "\t" + client_id + "\t" + member_id;
}

// Parses owner_record's text into `m` (partitions untouched); false for anything else.
bool parse_owner_record(std::string_view text, bus::group_member& m) {
    std::vector<std::string> fields;
    std::string field;
    std::istringstream in{std::string(text)};
    while (std::getline(in, field, '\t'))
        fields.push_back(field);
    if (fields.size() != 5 || fields[0] != "sluice1") return false;
    char* end = nullptr;
    m.seen_ms = std::strtoll(fields[1].c_str(), &end, 10);
    if (end == fields[1].c_str() || *end != '\0') return false;
    m.host = fields[2];
    m.client_id = fields[3];
    m.member_id = fields[4];
    return !m.member_id.empty();
}

// Adds `offset` of topic/partition to `list`, with `metadata` (librdkafka frees it).
void add_with_metadata(rd_kafka_topic_partition_list_t* list, const std::string& topic, uint32_t partition,
                       int64_t offset, const std::string& metadata) {
    rd_kafka_topic_partition_t* p =
        rd_kafka_topic_partition_list_add(list, topic.c_str(), static_cast<int32_t>(partition));
    p->offset = offset;
    p->metadata = std::malloc(metadata.size());  // NOLINT(cppcoreguidelines-no-malloc): librdkafka free()s it
    if (p->metadata != nullptr) {
        std::memcpy(p->metadata, metadata.data(), metadata.size());
        p->metadata_size = metadata.size();
    }
}

void log_cb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
    if (level <= 3) {
        SLUICE_ERROR("kafka", "%s: %s", fac, buf);
    } else if (level <= 5) {
        SLUICE_WARN("kafka", "%s: %s", fac, buf);
    } else {
        SLUICE_DEBUG("kafka", "%s: %s", fac, buf);
    }
}

class kafka_bus;

class kafka_reader final : public reader {
public:
    kafka_reader(rd_kafka_t* rk, kafka_bus& owner, uint32_t partition, uint64_t from)
        : rk_(rk), owner_(owner), partition_(partition), position_(from) {}
    ~kafka_reader() override {
        rd_kafka_consumer_close(rk_);
        rd_kafka_destroy(rk_);
    }
    result<size_t> poll(std::vector<record>& out, size_t max_records, std::chrono::milliseconds wait) override;
    uint64_t position() const override { return position_; }

private:
    rd_kafka_t* rk_;
    kafka_bus& owner_;
    uint32_t partition_;
    uint64_t position_;
};

class kafka_group final : public bus::membership {
public:
    kafka_group(std::string topic, std::string client_id, bus::partitions_callback assigned,
                bus::partitions_callback revoked, std::function<void()> forget)
        : topic_(std::move(topic)),
          client_id_(std::move(client_id)),
          host_(host_name()),
          assigned_(std::move(assigned)),
          revoked_(std::move(revoked)),
          forget_(std::move(forget)) {}
    ~kafka_group() override;
    void start(rd_kafka_t* rk);
    void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
    void commit_hint(uint32_t partition, uint64_t next_offset);

private:
    // On the poll thread: records this member as the owner of what it owns, with the
    // offset hint last committed (or Kafka's committed offset, or the partition's start).
    void record_ownership();
    // Commits `offsets` (async) with this member's ownership record.
    void commit_locked(const std::map<uint32_t, int64_t>& offsets) SLUICE_REQUIRES(hints_mutex_);

    rd_kafka_t* rk_ = nullptr;
    const std::string topic_;
    const std::string client_id_;
    const std::string host_;
    bus::partitions_callback assigned_;
    bus::partitions_callback revoked_;
    std::function<void()> forget_;  // detaches the bus's commit hints from this group
    std::vector<uint32_t> owned_;   // touched by the poll thread only (and the destructor after it)
    bool record_now_ = false;       // poll thread: an assignment came, record ownership at once
    std::string member_id_;         // poll thread: as the coordinator named us
    // Commits happen under it, so that the hints reach Kafka in the order they were made.
    sluice::mutex hints_mutex_;
    std::map<uint32_t, int64_t> hints_ SLUICE_GUARDED_BY(hints_mutex_);  // last hint per partition
    std::string record_ SLUICE_GUARDED_BY(hints_mutex_);                 // this member's ownership record
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

class kafka_bus final : public bus {
public:
    explicit kafka_bus(kafka_options o) : opts_(std::move(o)) {}
    ~kafka_bus() override { stop(); }

    result<void> open();

    uint32_t partitions() const override { return static_cast<uint32_t>(parts_.size()); }

    void append(uint32_t partition, message m, append_callback done) override {
        if (stopped_.load()) {
            done(errc::closed);
            return;
        }
        size_t bytes = m.payload.size() + m.client_id.size() + m.topic.size();
        // Owned by librdkafka (the message's opaque) until its delivery report deletes it.
        // NOLINTBEGIN(clang-analyzer-cplusplus.NewDeleteLeaks)
        auto* p = new pending{std::move(done), bytes, partition, m.receive_time_ms};
        in_flight_.fetch_add(1);
        in_flight_bytes_.fetch_add(bytes);
        char qos = static_cast<char>('0' + m.qos);
        rd_kafka_headers_t* headers = rd_kafka_headers_new(3);
        rd_kafka_header_add(headers, k_header_topic, -1, m.topic.data(), static_cast<ssize_t>(m.topic.size()));
        rd_kafka_header_add(headers, k_header_qos, -1, &qos, 1);
        if (m.packet_id != 0) {
            char id[2];
            store_be16(id, m.packet_id);
            rd_kafka_header_add(headers, k_header_packet_id, -1, id, 2);
        }
        // librdkafka's varargs macros cast the C way.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
        rd_kafka_resp_err_t err = rd_kafka_producev(
            producer_, RD_KAFKA_V_TOPIC(opts_.topic.c_str()), RD_KAFKA_V_PARTITION(static_cast<int32_t>(partition)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m.client_id.data(), m.client_id.size()),
            RD_KAFKA_V_VALUE(m.payload.data(), m.payload.size()), RD_KAFKA_V_TIMESTAMP(m.receive_time_ms),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
#pragma GCC diagnostic pop
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_headers_destroy(headers);  // on failure they stay ours
            // Refused before it reached librdkafka's queue: complete on the delivery thread.
            SLUICE_WARN("kafka", "produce to %s/%u refused: %s", opts_.topic.c_str(), partition, rd_kafka_err2str(err));
            sluice::mutex_lock lock(failed_mutex_);
            failed_.push_back(p);
        }
    }
    // NOLINTEND(clang-analyzer-cplusplus.NewDeleteLeaks)

    bool over_quota() const override {
        return in_flight_.load() >= opts_.max_in_flight || in_flight_bytes_.load() >= opts_.max_in_flight_bytes;
    }

    result<std::unique_ptr<reader>> open_reader(uint32_t partition, uint64_t from_offset) override;

    result<void> commit_cursor(std::string_view consumer, uint32_t partition, uint64_t next_offset) override {
        if (partition >= partitions() || consumer.empty()) return errc::invalid_argument;
        sluice::mutex_lock lock(group_mutex_);
        if (group_ != nullptr) group_->commit_hint(partition, next_offset);
        return {};
    }

    // The database holds consumers' positions; Kafka's committed offsets are a hint only.
    result<std::optional<uint64_t>> cursor(std::string_view, uint32_t partition) override {
        if (partition >= partitions()) return errc::invalid_argument;
        return std::optional<uint64_t>{};
    }

    result<std::unique_ptr<membership>> join_group(std::string_view group, partitions_callback assigned,
                                                   partitions_callback revoked) override;

    result<group_description> describe_group(std::string_view group) override;
    // Whether the brokers answer DescribeGroups (asked until they answer).
    bool coordinator_describes(const std::string& group);
    // Members and assignments from the group coordinator (DescribeGroups); false when the
    // brokers do not support it.
    result<bool> members_from_coordinator(const std::string& group, group_description& d);
    // The owners each member records with its offset hints (OffsetFetch).
    result<void> members_from_offsets(const std::string& group, group_description& d);

    stats get_stats(uint32_t partition) const override {
        stats s;
        if (partition >= parts_.size()) return s;
        const auto& p = *parts_[partition];
        s.durable_end = p.high.load();
        s.oldest_offset = p.low.load();
        s.newest_receive_time_ms = p.newest_receive_ms.load();
        s.appends = p.appends.load();
        return s;
    }

    void stop() override {
        if (stopped_.exchange(true)) return;
        if (producer_ != nullptr) {
            rd_kafka_resp_err_t err = rd_kafka_flush(producer_, 10'000);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                SLUICE_WARN("kafka", "%d records not delivered at stop: they fail (not acknowledged)",
                            rd_kafka_outq_len(producer_));
                rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
                rd_kafka_poll(producer_, 100);
            }
        }
        polling_.store(false);
        if (poller_.joinable()) poller_.join();
        drain_failed();
        if (producer_ != nullptr) {
            rd_kafka_destroy(producer_);
            producer_ = nullptr;
        }
    }

    // Called by readers: what a fetch told us of the partition.
    void observe(uint32_t partition, rd_kafka_t* rk) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets(rk, opts_.topic.c_str(), static_cast<int32_t>(partition), &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            hi >= 0) {
            atomic_max(parts_[partition]->high, static_cast<uint64_t>(hi));
            if (lo >= 0) parts_[partition]->low.store(static_cast<uint64_t>(lo));
        }
    }
    void observe_record(uint32_t partition, uint64_t offset, int64_t ts) {
        atomic_max(parts_[partition]->high, offset + 1);
        int64_t cur = parts_[partition]->newest_receive_ms.load();
        while (cur < ts && !parts_[partition]->newest_receive_ms.compare_exchange_weak(cur, ts)) {
        }
    }
    const std::string& topic() const {
        return opts_.topic;
    }
    // The group members' session timeout: how long a dead worker keeps its partitions.
    int64_t session_timeout_ms() const {
        int64_t ms = k_session_timeout_ms;
        if (auto it = opts_.properties.find("session.timeout.ms"); it != opts_.properties.end())
            std::from_chars(it->second.data(), it->second.data() + it->second.size(), ms);
        return ms;
    }

private:
    static void delivery_report(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        auto* self = static_cast<kafka_bus*>(opaque);
        auto* p = static_cast<pending*>(m->_private);
        self->in_flight_.fetch_sub(1);
        self->in_flight_bytes_.fetch_sub(p->bytes);
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset >= 0) {
            auto& st = *self->parts_[p->partition];
            self->observe_record(p->partition, static_cast<uint64_t>(m->offset), p->receive_time_ms);
            st.appends.fetch_add(1);
            p->done(static_cast<uint64_t>(m->offset));
        } else {
            SLUICE_WARN("kafka", "record for %s/%u not delivered: %s (not acknowledged)", self->opts_.topic.c_str(),
                        p->partition, rd_kafka_err2str(m->err));
            p->done(m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
                        ? errc::closed
                        : errc::io_error);
        }
        delete p;
    }

    void drain_failed() {
        std::deque<pending*> failed;
        {
            sluice::mutex_lock lock(failed_mutex_);
            failed.swap(failed_);
        }
        for (pending* p : failed) {
            in_flight_.fetch_sub(1);
            in_flight_bytes_.fetch_sub(p->bytes);
            p->done(stopped_.load() ? errc::closed : errc::io_error);
            delete p;
        }
    }

    rd_kafka_conf_t* base_conf() const {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        char err[512];
        rd_kafka_conf_set(conf, "bootstrap.servers", opts_.brokers.c_str(), err, sizeof err);
        rd_kafka_conf_set(conf, "client.id", opts_.client_id.c_str(), err, sizeof err);
        rd_kafka_conf_set_log_cb(conf, log_cb);
        return conf;
    }

    friend class kafka_reader;

    kafka_options opts_;
    rd_kafka_t* producer_ = nullptr;
    std::vector<std::unique_ptr<partition_state>> parts_;
    std::atomic<size_t> in_flight_{0};
    std::atomic<size_t> in_flight_bytes_{0};
    sluice::mutex failed_mutex_;
    std::deque<pending*> failed_ SLUICE_GUARDED_BY(failed_mutex_);
    std::atomic<bool> stopped_{false};
    std::atomic<bool> polling_{true};
    std::thread poller_;
    sluice::mutex group_mutex_;
    kafka_group* group_ SLUICE_GUARDED_BY(group_mutex_) = nullptr;  // owned by the caller of join_group
    std::atomic<int> describes_{-1};  // coordinator_describes(): -1 not known yet, 0 no, 1 yes
};

result<void> kafka_bus::open() {
    if (opts_.brokers.empty()) {
        SLUICE_ERROR("kafka", "no bootstrap servers (--kafka-brokers)");
        return errc::invalid_argument;
    }
    if (opts_.topic.empty()) return errc::invalid_argument;
    rd_kafka_conf_t* conf = base_conf();
    std::map<std::string, std::string> defaults{
        {"linger.ms", "2"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", std::to_string(opts_.max_in_flight * 2 + 1000)},
        {"queue.buffering.max.kbytes", std::to_string((opts_.max_in_flight_bytes * 2) / 1024 + 1024)},
        {"message.timeout.ms", std::to_string(opts_.delivery_timeout.count())},
    };
    std::map<std::string, std::string> forced{{"enable.idempotence", "true"}, {"acks", "all"}};
    // [kafka.properties] reach every client; the consumer-group ones mean nothing to a
    // producer (librdkafka would log a CONFWARN for each).
    std::map<std::string, std::string> props = opts_.properties;
    for (const char* k : {"session.timeout.ms", "heartbeat.interval.ms", "group.id", "partition.assignment.strategy",
                          "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store", "fetch.wait.max.ms",
                          "max.poll.interval.ms", "group.instance.id"}) {
        props.erase(k);
    }
    if (!apply_settings(conf, defaults) || !apply_settings(conf, props) || !apply_settings(conf, forced)) {
        rd_kafka_conf_destroy(conf);
        return errc::invalid_argument;
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_report);
    char err[512];
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (producer_ == nullptr) {
        SLUICE_ERROR("kafka", "cannot create the producer: %s", err);
        rd_kafka_conf_destroy(conf);
        return errc::invalid_argument;
    }
    // The topic's partition count fixes the bus's partitions.
    auto deadline = std::chrono::steady_clock::now() + opts_.metadata_timeout;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer_, opts_.topic.c_str(), nullptr);
    int count = 0;
    std::string last_error = "no answer";
    while (count == 0 && std::chrono::steady_clock::now() < deadline) {
        const rd_kafka_metadata_t* md = nullptr;
        rd_kafka_resp_err_t e = rd_kafka_metadata(producer_, 0, rkt, &md, 2000);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                count = md->topics[0].partition_cnt;
            } else if (md->topic_cnt == 1) {
                last_error = rd_kafka_err2str(md->topics[0].err);
            }
            rd_kafka_metadata_destroy(md);
        } else {
            last_error = rd_kafka_err2str(e);
        }
        if (count == 0) std::this_thread::sleep_for(200ms);
    }
    rd_kafka_topic_destroy(rkt);
    if (count == 0) {
        SLUICE_ERROR("kafka", "topic %s on %s: %s", opts_.topic.c_str(), opts_.brokers.c_str(), last_error.c_str());
        rd_kafka_destroy(producer_);
        producer_ = nullptr;
        return errc::not_found;
    }
    for (int i = 0; i < count; ++i)
        parts_.push_back(std::make_unique<partition_state>());
    poller_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "sluice-kafka");
        while (polling_.load()) {
            rd_kafka_poll(producer_, 50);
            drain_failed();
        }
    });
    SLUICE_INFO("kafka", "bus on Kafka %s, topic %s with %d partitions", opts_.brokers.c_str(), opts_.topic.c_str(),
                count);
    return {};
}

result<std::unique_ptr<reader>> kafka_bus::open_reader(uint32_t partition, uint64_t from_offset) {
    if (partition >= partitions()) return errc::invalid_argument;
    if (stopped_.load()) return errc::closed;
    // Where the partition starts now (retention may have deleted the beginning).
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(producer_, opts_.topic.c_str(),
                                                             static_cast<int32_t>(partition), &lo, &hi, 5000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        parts_[partition]->low.store(static_cast<uint64_t>(lo));
        atomic_max(parts_[partition]->high, static_cast<uint64_t>(hi));
        if (static_cast<int64_t>(from_offset) < lo) return errc::not_found;
        if (static_cast<int64_t>(from_offset) > hi) return errc::invalid_argument;
    } else {
        SLUICE_WARN("kafka", "watermarks of %s/%u: %s; reading anyway", opts_.topic.c_str(), partition,
                    rd_kafka_err2str(e));
    }
    rd_kafka_conf_t* conf = base_conf();
    std::map<std::string, std::string> defaults{
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"auto.offset.reset", "error"},  // never skip silently: a missing offset is an error
        {"fetch.wait.max.ms", "50"},
        // Needed by assign(); never joined (no subscribe) and never committed to.
        {"group.id", "sluice-reader-" + opts_.topic},
    };
    std::map<std::string, std::string> props = opts_.properties;
    // Producer-only and group settings would make a plain consumer refuse to start.
    for (const char* k : {"acks", "enable.idempotence", "linger.ms", "message.timeout.ms", "batch.num.messages",
                          "session.timeout.ms", "heartbeat.interval.ms", "group.id", "partition.assignment.strategy"}) {
        props.erase(k);
    }
    if (!apply_settings(conf, defaults) || !apply_settings(conf, props)) {
        rd_kafka_conf_destroy(conf);
        return errc::invalid_argument;
    }
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) {
        SLUICE_ERROR("kafka", "cannot create a consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        return errc::io_error;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, opts_.topic.c_str(), static_cast<int32_t>(partition))->offset =
        static_cast<int64_t>(from_offset);
    e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        SLUICE_ERROR("kafka", "cannot assign %s/%u: %s", opts_.topic.c_str(), partition, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return errc::io_error;
    }
    return std::unique_ptr<reader>(std::make_unique<kafka_reader>(rk, *this, partition, from_offset));
}

result<size_t> kafka_reader::poll(std::vector<record>& out, size_t max_records, std::chrono::milliseconds wait) {
    size_t n = 0;
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (n < max_records) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        int timeout = n > 0 ? 0 : static_cast<int>(std::max<int64_t>(left.count(), 0));
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, timeout);
        if (m == nullptr) {
            if (n > 0 || std::chrono::steady_clock::now() >= deadline) break;
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_resp_err_t err = m->err;
            std::string what = rd_kafka_message_errstr(m);
            rd_kafka_message_destroy(m);
            if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
            if (err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE || err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
                SLUICE_ERROR("kafka", "offset %llu of %s/%u: %s", static_cast<unsigned long long>(position_),
                             owner_.topic().c_str(), partition_, what.c_str());
                return errc::not_found;
            }
            // Transport errors (a broker down, a leader moving): librdkafka retries by itself.
            SLUICE_DEBUG("kafka", "consumer of %s/%u: %s", owner_.topic().c_str(), partition_, what.c_str());
            if (n > 0) break;
            continue;
        }
        if (m->partition != static_cast<int32_t>(partition_) || m->offset < static_cast<int64_t>(position_)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        record r;
        r.offset = static_cast<uint64_t>(m->offset);
        if (m->key != nullptr) r.msg.client_id.assign(static_cast<const char*>(m->key), m->key_len);
        if (m->payload != nullptr) r.msg.payload.assign(static_cast<const char*>(m->payload), m->len);
        rd_kafka_timestamp_type_t tstype;
        r.msg.receive_time_ms = rd_kafka_message_timestamp(m, &tstype);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const void* v = nullptr;
            size_t len = 0;
            if (rd_kafka_header_get_last(hdrs, k_header_topic, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
                r.msg.topic.assign(static_cast<const char*>(v), len);
            }
            if (rd_kafka_header_get_last(hdrs, k_header_qos, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v && len == 1) {
                r.msg.qos = static_cast<uint8_t>(*static_cast<const char*>(v) - '0');
            }
            if (rd_kafka_header_get_last(hdrs, k_header_packet_id, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
                len == 2) {
                r.msg.packet_id = load_be16(v);
            }
        }
        position_ = r.offset + 1;
        owner_.observe_record(partition_, r.offset, r.msg.receive_time_ms);
        rd_kafka_message_destroy(m);
        out.push_back(std::move(r));
        ++n;
    }
    owner_.observe(partition_, rk_);
    return n;
}

// ---- consumer group (ownership only) ----

void rebalance_cb(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<kafka_group*>(opaque)->on_rebalance(err, parts);
}

void kafka_group::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    std::vector<uint32_t> list;
    list.reserve(static_cast<size_t>(parts->cnt));
    for (int i = 0; i < parts->cnt; ++i)
        list.push_back(static_cast<uint32_t>(parts->elems[i].partition));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk_, parts);
        rd_kafka_pause_partitions(rk_, parts);  // ownership only: the runners read on their own
        owned_ = list;
        record_now_ = true;
        SLUICE_INFO("kafka", "group: %zu partition(s) assigned", list.size());
        assigned_(list);
    } else {
        SLUICE_INFO("kafka", "group: %zu partition(s) revoked", list.size());
        revoked_(list);
        owned_.clear();
        {
            // Our hints for them go stale as the next owner commits.
            sluice::mutex_lock lock(hints_mutex_);
            hints_.clear();
        }
        rd_kafka_assign(rk_, nullptr);
    }
}

void kafka_group::start(rd_kafka_t* rk) {
    rk_ = rk;
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "sluice-kgroup");
        auto next_record = std::chrono::steady_clock::now();
        while (!stopping_.load()) {
            rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 100);
            if (m != nullptr) {
                if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    SLUICE_DEBUG("kafka", "group: %s", rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
            }
            if (!owned_.empty() && (record_now_ || std::chrono::steady_clock::now() >= next_record)) {
                record_now_ = false;
                record_ownership();
                next_record = std::chrono::steady_clock::now() + k_owner_refresh;
            }
        }
    });
}

void kafka_group::record_ownership() {
    if (char* id = rd_kafka_memberid(rk_); id != nullptr) {
        member_id_ = id;
        rd_kafka_mem_free(rk_, id);
    }
    // Partitions without a hint of ours yet: Kafka's committed offset, else the start.
    std::vector<uint32_t> unknown;
    {
        sluice::mutex_lock lock(hints_mutex_);
        for (uint32_t p : owned_) {
            if (hints_.count(p) == 0) unknown.push_back(p);
        }
    }
    std::map<uint32_t, int64_t> found;
    if (!unknown.empty()) {
        rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(unknown.size()));
        for (uint32_t p : unknown)
            rd_kafka_topic_partition_list_add(list, topic_.c_str(), static_cast<int32_t>(p));
        if (rd_kafka_committed(rk_, list, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < list->cnt; ++i) {
                if (list->elems[i].offset >= 0)
                    found[static_cast<uint32_t>(list->elems[i].partition)] = list->elems[i].offset;
            }
        }
        rd_kafka_topic_partition_list_destroy(list);
        for (uint32_t p : unknown) {
            int64_t lo = 0, hi = 0;
            if (found.count(p) == 0 && rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), static_cast<int32_t>(p),
                                                                        &lo, &hi, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                found[p] = lo;
            }
        }
    }
    sluice::mutex_lock lock(hints_mutex_);
    record_ = owner_record(unix_ms(), host_, client_id_, member_id_);
    for (auto [p, offset] : found)
        hints_.emplace(p, offset);  // a runner's hint that came meanwhile wins
    std::map<uint32_t, int64_t> offsets;
    for (uint32_t p : owned_) {
        if (auto it = hints_.find(p); it != hints_.end()) offsets[p] = it->second;
    }
    commit_locked(offsets);
}

void kafka_group::commit_locked(const std::map<uint32_t, int64_t>& offsets) {
    if (offsets.empty()) return;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
    for (auto [p, offset] : offsets)
        add_with_metadata(list, topic_, p, offset, record_);
    rd_kafka_commit(rk_, list, 1);  // async; a hint for lag tools, failures do not matter
    rd_kafka_topic_partition_list_destroy(list);
}

void kafka_group::commit_hint(uint32_t partition, uint64_t next_offset) {
    sluice::mutex_lock lock(hints_mutex_);
    hints_[partition] = static_cast<int64_t>(next_offset);
    commit_locked({{partition, static_cast<int64_t>(next_offset)}});
}

kafka_group::~kafka_group() {
    forget_();
    stopping_.store(true);
    if (thread_.joinable()) thread_.join();
    // Leaving the group: close() runs the revoke callback for what we own.
    rd_kafka_consumer_close(rk_);
    if (!owned_.empty()) {
        revoked_(owned_);
        owned_.clear();
    }
    rd_kafka_destroy(rk_);
}

result<std::unique_ptr<bus::membership>> kafka_bus::join_group(std::string_view group, partitions_callback assigned,
                                                               partitions_callback revoked) {
    if (group.empty()) return errc::invalid_argument;
    rd_kafka_conf_t* conf = base_conf();
    std::map<std::string, std::string> defaults{
        {"group.id", std::string(group)},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "latest"},
        {"session.timeout.ms", std::to_string(k_session_timeout_ms)},
        {"heartbeat.interval.ms", "1000"},
    };
    std::map<std::string, std::string> props = opts_.properties;
    for (const char* k : {"acks", "enable.idempotence", "linger.ms", "message.timeout.ms", "batch.num.messages"}) {
        props.erase(k);
    }
    if (!apply_settings(conf, defaults) || !apply_settings(conf, props)) {
        rd_kafka_conf_destroy(conf);
        return errc::invalid_argument;
    }
    auto g =
        std::make_unique<kafka_group>(opts_.topic, opts_.client_id, std::move(assigned), std::move(revoked), [this] {
            sluice::mutex_lock lock(group_mutex_);
            group_ = nullptr;
        });
    rd_kafka_conf_set_opaque(conf, g.get());
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) {
        SLUICE_ERROR("kafka", "cannot create the group consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        return errc::io_error;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, opts_.topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        SLUICE_ERROR("kafka", "cannot join group %.*s: %s", static_cast<int>(group.size()), group.data(),
                     rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return errc::io_error;
    }
    g->start(rk);
    {
        sluice::mutex_lock lock(group_mutex_);
        group_ = g.get();
    }
    return std::unique_ptr<membership>(std::move(g));
}

// ---- describing the group ----

namespace {

constexpr std::chrono::milliseconds k_admin_timeout = 5s;

// One admin request's queue, options and answer.
struct admin_call {
    rd_kafka_queue_t* queue;
    rd_kafka_AdminOptions_t* options;
    rd_kafka_event_t* answer = nullptr;

    explicit admin_call(rd_kafka_t* rk)
        : queue(rd_kafka_queue_new(rk)), options(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY)) {
        char err[256];
        rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(k_admin_timeout.count()), err, sizeof err);
    }
    admin_call(const admin_call&) = delete;
    admin_call& operator=(const admin_call&) = delete;
    ~admin_call() {
        if (answer != nullptr) rd_kafka_event_destroy(answer);
        rd_kafka_AdminOptions_destroy(options);
        rd_kafka_queue_destroy(queue);
    }
    // The answer, or null when none came in time.
    rd_kafka_event_t* wait() {
        answer = rd_kafka_queue_poll(queue, static_cast<int>((k_admin_timeout + 1s).count()));
        return answer;
    }
};

}  // namespace

result<bool> kafka_bus::members_from_coordinator(const std::string& group, group_description& d) {
    admin_call call(producer_);
    const char* names[] = {group.c_str()};
    rd_kafka_DescribeConsumerGroups(producer_, names, 1, call.options, call.queue);
    rd_kafka_event_t* ev = call.wait();
    if (ev != nullptr && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) return false;
    if (ev == nullptr || rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        SLUICE_WARN("kafka", "describing group %s: %s", group.c_str(),
                    ev != nullptr ? rd_kafka_event_error_string(ev) : "no answer");
        return errc::io_error;
    }
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t** groups =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    if (n != 1) return errc::io_error;
    if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(groups[0]); e != nullptr) {
        if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) return false;
        SLUICE_WARN("kafka", "describing group %s: %s", group.c_str(), rd_kafka_error_string(e));
        return errc::io_error;
    }
    d.source = "describe-groups";
    d.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(groups[0]));
    for (size_t i = 0; i < rd_kafka_ConsumerGroupDescription_member_count(groups[0]); ++i) {
        const rd_kafka_MemberDescription_t* md = rd_kafka_ConsumerGroupDescription_member(groups[0], i);
        group_member m;
        m.member_id = rd_kafka_MemberDescription_consumer_id(md);
        m.client_id = rd_kafka_MemberDescription_client_id(md);
        m.host = rd_kafka_MemberDescription_host(md);
        const rd_kafka_topic_partition_list_t* a =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(md));
        for (int j = 0; a != nullptr && j < a->cnt; ++j) {
            if (opts_.topic == a->elems[j].topic) m.partitions.push_back(static_cast<uint32_t>(a->elems[j].partition));
        }
        d.members.push_back(std::move(m));
    }
    return true;
}

result<void> kafka_bus::members_from_offsets(const std::string& group, group_description& d) {
    admin_call call(producer_);
    rd_kafka_topic_partition_list_t* want = rd_kafka_topic_partition_list_new(static_cast<int>(partitions()));
    for (uint32_t p = 0; p < partitions(); ++p)
        rd_kafka_topic_partition_list_add(want, opts_.topic.c_str(), static_cast<int32_t>(p));
    rd_kafka_ListConsumerGroupOffsets_t* req = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), want);
    rd_kafka_topic_partition_list_destroy(want);
    rd_kafka_ListConsumerGroupOffsets(producer_, &req, 1, call.options, call.queue);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_event_t* ev = call.wait();
    size_t n = 0;
    const rd_kafka_group_result_t** groups =
        ev != nullptr && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR
            ? rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n)
            : nullptr;
    if (n != 1 || rd_kafka_group_result_error(groups[0]) != nullptr) {
        SLUICE_WARN("kafka", "committed offsets of group %s: %s", group.c_str(),
                    ev == nullptr ? "no answer" : "refused");
        return errc::io_error;
    }
    d.source = "offset-metadata";
    // A record older than this is no ownership: its worker died or left.
    const int64_t stale_ms = session_timeout_ms() + 2 * std::chrono::milliseconds(k_owner_refresh).count();
    const int64_t now = unix_ms();
    std::map<std::string, group_member> members;
    const rd_kafka_topic_partition_list_t* l = rd_kafka_group_result_partitions(groups[0]);
    for (int i = 0; l != nullptr && i < l->cnt; ++i) {
        const auto& e = l->elems[i];
        group_member m;
        if (e.metadata == nullptr || !parse_owner_record({static_cast<const char*>(e.metadata), e.metadata_size}, m) ||
            now - m.seen_ms > stale_ms) {
            continue;
        }
        auto it = members.emplace(m.member_id, m).first;
        it->second.seen_ms = std::max(it->second.seen_ms, m.seen_ms);
        it->second.partitions.push_back(static_cast<uint32_t>(e.partition));
    }
    for (auto& [id, m] : members)
        d.members.push_back(std::move(m));
    return {};
}

bool kafka_bus::coordinator_describes(const std::string& group) {
    int known = describes_.load();
    if (known >= 0) return known == 1;
        // The legacy ListGroups/DescribeGroups call tells whether the brokers describe groups
        // at all: librdkafka 2.0.2's DescribeConsumerGroups against brokers that cannot (its
        // mock cluster) leaves the handle unable to be destroyed.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    const rd_kafka_group_list* list = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(producer_, group.c_str(), &list, 5000);
#pragma GCC diagnostic pop
    if (list != nullptr) rd_kafka_group_list_destroy(list);
    if (e == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE) {
        SLUICE_INFO("kafka", "the brokers cannot describe groups: owners come from the offset hints' metadata");
        describes_.store(0);
    } else if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        describes_.store(1);
    }
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

result<bus::group_description> kafka_bus::describe_group(std::string_view group) {
    if (group.empty()) return errc::invalid_argument;
    if (stopped_.load()) return errc::closed;
    group_description d;
    for (uint32_t p = 0; p < partitions(); ++p) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(producer_, opts_.topic.c_str(), static_cast<int32_t>(p), &lo, &hi, 2000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            parts_[p]->low.store(static_cast<uint64_t>(lo));
            atomic_max(parts_[p]->high, static_cast<uint64_t>(hi));
        }
        d.ends.push_back(parts_[p]->high.load());
    }
    const std::string name(group);
    if (coordinator_describes(name)) {
        auto described = members_from_coordinator(name, d);
        if (!described) return described.error();
        if (*described) return d;
    }
    if (auto r = members_from_offsets(name, d); !r) return r.error();
    return d;
}

}  // namespace

result<std::unique_ptr<bus>> open_kafka(const kafka_options& options) {
    auto b = std::make_unique<kafka_bus>(options);
    if (auto r = b->open(); !r) return r.error();
    return std::unique_ptr<bus>(std::move(b));
}

}  // namespace sluice::bus
