// SPDX-License-Identifier: Apache-2.0
#include "http/cluster.h"

#include <algorithm>
#include <cstdio>

#include "http/json.h"

namespace sluice::http {
namespace {

// One partition's row: who owns it and how far the database is behind.
struct partition_row {
    uint32_t partition = 0;
    const bus::bus::group_member* owner = nullptr;
    size_t owners = 0;  // more than one: the members' views disagree (a rebalance in flight)
    uint64_t end = 0;
    std::optional<int64_t> stored;
    std::optional<std::string> stored_at;
    // Records not yet in the database; a partition without a stored offset counts from 0.
    uint64_t lag() const {
        uint64_t s = stored ? static_cast<uint64_t>(std::max<int64_t>(*stored, 0)) : 0;
        return end > s ? end - s : 0;
    }
};

std::vector<partition_row> rows_of(const cluster_view& v) {
    std::vector<partition_row> rows(v.group_state.ends.size());
    for (size_t p = 0; p < rows.size(); ++p) {
        rows[p].partition = static_cast<uint32_t>(p);
        rows[p].end = v.group_state.ends[p];
    }
    for (const auto& m : v.group_state.members) {
        for (uint32_t p : m.partitions) {
            if (p >= rows.size()) continue;
            if (rows[p].owner == nullptr) rows[p].owner = &m;
            ++rows[p].owners;
        }
    }
    if (v.stored) {
        for (const auto& s : *v.stored) {
            if (s.partition < 0 || static_cast<size_t>(s.partition) >= rows.size()) continue;
            rows[static_cast<size_t>(s.partition)].stored = s.next_offset;
            rows[static_cast<size_t>(s.partition)].stored_at = s.updated_at;
        }
    }
    return rows;
}

// "0,2,5"
std::string joined(const std::vector<uint32_t>& parts) {
    std::string out;
    for (uint32_t p : parts)
        out += (out.empty() ? "" : ",") + std::to_string(p);
    return out;
}

}  // namespace

std::string cluster_json(const cluster_view& v) {
    const auto rows = rows_of(v);
    std::string out;
    json_object o(out);
    o.string("bus", v.bus).string("topic", v.topic).string("group", v.group).string("consumer", v.consumer);
    o.string("source", v.group_state.source).string("state", v.group_state.state);
    o.boolean("database", v.stored.has_value());
    std::string& members = o.member("members");
    members += '[';
    for (size_t i = 0; i < v.group_state.members.size(); ++i) {
        const auto& m = v.group_state.members[i];
        if (i > 0) members += ',';
        json_object mo(members);
        mo.string("member_id", m.member_id).string("client_id", m.client_id).string("host", m.host);
        mo.member("partitions") += "[" + joined(m.partitions) + "]";
        if (m.seen_ms > 0) {
            mo.number("seen_ms", static_cast<double>(m.seen_ms));
        }
        mo.close();
    }
    members += ']';
    std::string& parts = o.member("partitions");
    parts += '[';
    std::vector<uint32_t> unowned;
    for (size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        if (i > 0) parts += ',';
        json_object po(parts);
        po.number("partition", r.partition);
        po.string_or_null("owner", r.owner != nullptr ? std::optional<std::string>(r.owner->member_id) : std::nullopt);
        po.number("owners", static_cast<double>(r.owners));
        po.number("end_offset", static_cast<double>(r.end));
        if (r.stored) {
            po.number("stored_offset", static_cast<double>(*r.stored));
        } else {
            po.member("stored_offset") += "null";
        }
        po.string_or_null("stored_at", r.stored_at);
        if (v.stored) {
            po.number("lag", static_cast<double>(r.lag()));
        } else {
            po.member("lag") += "null";
        }
        po.close();
        if (r.owner == nullptr) unowned.push_back(r.partition);
    }
    parts += ']';
    o.member("unowned") += "[" + joined(unowned) + "]";
    o.close();
    return out;
}

std::string cluster_text(const cluster_view& v) {
    const auto rows = rows_of(v);
    std::string out = "bus " + v.bus;
    if (!v.topic.empty()) out += ", topic " + v.topic;
    out += ", group " + v.group + " (members from " + v.group_state.source;
    if (!v.group_state.state.empty()) out += ", " + v.group_state.state;
    out += ")\n\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-44s %-20s %-20s %s\n", "MEMBER", "CLIENT", "HOST", "PARTITIONS");
    out += line;
    for (const auto& m : v.group_state.members) {
        std::snprintf(line, sizeof line, "%-44s %-20s %-20s %s\n", m.member_id.c_str(), m.client_id.c_str(),
                      m.host.c_str(), (m.partitions.empty() ? std::string("-") : joined(m.partitions)).c_str());
        out += line;
    }
    if (v.group_state.members.empty()) out += "(no member)\n";
    std::snprintf(line, sizeof line, "\n%-9s %-44s %14s %14s %12s\n", "PARTITION", "OWNER", "END", "STORED", "LAG");
    out += line;
    size_t unowned = 0;
    for (const auto& r : rows) {
        std::string stored = r.stored ? std::to_string(*r.stored) : "-";
        std::string lag = v.stored ? std::to_string(r.lag()) : "?";
        std::string owner = r.owner != nullptr ? r.owner->member_id : "NO OWNER";
        unowned += r.owner == nullptr ? 1 : 0;
        std::snprintf(line, sizeof line, "%-9u %-44s %14llu %14s %12s\n", r.partition, owner.c_str(),
                      static_cast<unsigned long long>(r.end), stored.c_str(), lag.c_str());
        out += line;
    }
    if (unowned > 0) out += "\n" + std::to_string(unowned) + " partition(s) without an owner\n";
    if (!v.stored) out += "\ndatabase unavailable: stored offsets and lag unknown\n";
    return out;
}

}  // namespace sluice::http
