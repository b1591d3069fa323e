// SPDX-License-Identifier: Apache-2.0
//
// The libpq implementation of registry (devices and metrics in schema sluice_app).
// One connection behind a mutex: this is human-speed data, and the pipeline caches it.
// Every name it registers or loads is also copied into the telemetry database's
// dictionary (sluice_telemetry.device_names / metric_names, which the readings view
// joins), through a second connection when the two databases differ, before the id is
// returned: a reading is never stored before its names are.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/thread_annotations.h"
#include "base/utf8.h"
#include "store/pg.h"
#include "store/registry.h"
#include "store/schema.h"

namespace sluice::store {
namespace {

constexpr const char* k_device_columns = "id, key, name, site, line, metadata::text";

std::optional<double> opt_double(const pg::query_result& q, int row, int col) {
    if (q.is_null(row, col)) return std::nullopt;
    return std::stod(std::string(q.get(row, col)));
}

device device_at(const pg::query_result& q, int i) {
    return device{static_cast<int32_t>(std::stol(std::string(q.get(i, 0)))),
                  std::string(q.get(i, 1)),
                  std::string(q.get(i, 2)),
                  std::string(q.get(i, 3)),
                  std::string(q.get(i, 4)),
                  std::string(q.get(i, 5))};
}

class pg_registry final : public registry {
public:
    explicit pg_registry(const store_options& o) : conn_(o.app_url, o.connect_timeout, "sluice-registry") {
        if (!o.telemetry_url.empty() && o.telemetry_url != o.app_url) {
            names_conn_ = std::make_unique<pg::connection>(o.telemetry_url, o.connect_timeout, "sluice-names");
        }
        names_enabled_ = !o.telemetry_url.empty();
    }

    result<void> migrate() override {
        mutex_lock lk(mu_);
        return schema::migrate_app(conn_);
    }

    result<device> ensure_device(std::string_view key, std::string_view site, std::string_view line) override {
        if (key.empty()) return errc::invalid_argument;
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        const std::string k = repair_utf8(key);
        // Insert, or fill in a site/line that was unknown; no write when nothing changes.
        const std::string sql =
            std::string(
                "INSERT INTO sluice_app.devices AS d (key, name, site, line) VALUES ($1, $1, $2, $3) "
                "ON CONFLICT (key) DO UPDATE SET site = CASE WHEN d.site = '' THEN excluded.site ELSE d.site END, "
                "line = CASE WHEN d.line = '' THEN excluded.line ELSE d.line END "
                "WHERE (d.site = '' AND excluded.site <> '') OR (d.line = '' AND excluded.line <> '') RETURNING ") +
            k_device_columns;
        auto q = conn_.query(sql.c_str(), {k, repair_utf8(site), repair_utf8(line)});
        if (!q) return q.error();
        std::optional<device> d;
        if (q->rows() == 1) {
            d = device_at(*q, 0);
        } else {
            auto found = find_locked(k);
            if (!found) return found.error();
            if (!*found) return errc::query_failed;  // deleted concurrently
            d = std::move(**found);
        }
        if (auto s = sync_device_names({*d}); !s) return s.error();
        return std::move(*d);
    }

    result<std::vector<device>> ensure_devices(const std::vector<device_request>& requests) override {
        std::vector<device> out;
        if (requests.empty()) return out;
        std::vector<std::string> keys, sites, lines;
        for (const auto& r : requests) {
            if (r.key.empty()) return errc::invalid_argument;
            keys.push_back(repair_utf8(r.key));
            sites.push_back(repair_utf8(r.site));
            lines.push_back(repair_utf8(r.line));
        }
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        const std::string k = text_array(keys);
        auto ins = conn_.query(
            "INSERT INTO sluice_app.devices (key, name, site, line) "
            "SELECT k, k, s, l FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, s, l) "
            "ON CONFLICT (key) DO NOTHING",
            {k, text_array(sites), text_array(lines)});
        if (!ins) return ins.error();
        const std::string sql =
            std::string("SELECT ") + k_device_columns + " FROM sluice_app.devices WHERE key = ANY($1::text[])";
        auto q = conn_.query(sql.c_str(), {k});
        if (!q) return q.error();
        for (int i = 0; i < q->rows(); ++i)
            out.push_back(device_at(*q, i));
        if (auto s = sync_device_names(out); !s) return s.error();
        return out;
    }

    // A PostgreSQL text[] literal: every element double-quoted, '"' and '\' escaped.
    static std::string text_array(const std::vector<std::string>& items) {
        std::string out = "{";
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += ',';
            out += '"';
            for (char c : items[i]) {
                if (c == '"' || c == '\\') out += '\\';
                out += c;
            }
            out += '"';
        }
        out += '}';
        return out;
    }

    result<std::optional<device>> find_device(std::string_view key) override {
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        return find_locked(repair_utf8(key));
    }

    result<int32_t> ensure_metric(std::string_view name) override {
        if (name.empty()) return errc::invalid_argument;
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        const std::string n = repair_utf8(name);
        auto q = conn_.query(
            "WITH ins AS (INSERT INTO sluice_app.metrics (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING "
            "id) "
            "SELECT id FROM ins UNION ALL SELECT id FROM sluice_app.metrics WHERE name = $1",
            {n});
        if (!q) return q.error();
        if (q->rows() == 0) return errc::query_failed;
        const auto id = static_cast<int32_t>(std::stol(std::string(q->get(0, 0))));
        auto unit = conn_.query("SELECT unit FROM sluice_app.metrics WHERE id = $1", {std::to_string(id)});
        if (!unit) return unit.error();
        const std::string u = unit->rows() ? std::string(unit->get(0, 0)) : std::string();
        if (auto s = sync_metric_names({id}, {n}, {u}); !s) return s.error();
        return id;
    }

    result<std::vector<std::pair<std::string, int32_t>>> ensure_metrics(
        const std::vector<std::string>& names) override {
        std::vector<std::pair<std::string, int32_t>> out;
        if (names.empty()) return out;
        std::vector<std::string> clean;
        clean.reserve(names.size());
        for (const auto& n : names) {
            if (n.empty()) return errc::invalid_argument;
            clean.push_back(repair_utf8(n));
        }
        const std::string arr = text_array(clean);
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        auto ins = conn_.query(
            "INSERT INTO sluice_app.metrics (name) SELECT DISTINCT n FROM unnest($1::text[]) AS u(n) "
            "ON CONFLICT (name) DO NOTHING",
            {arr});
        if (!ins) return ins.error();
        auto q = conn_.query("SELECT name, id, unit FROM sluice_app.metrics WHERE name = ANY($1::text[])", {arr});
        if (!q) return q.error();
        std::vector<int32_t> ids;
        std::vector<std::string> found, units;
        for (int i = 0; i < q->rows(); ++i) {
            out.emplace_back(std::string(q->get(i, 0)), static_cast<int32_t>(std::stol(std::string(q->get(i, 1)))));
            ids.push_back(out.back().second);
            found.push_back(out.back().first);
            units.emplace_back(q->get(i, 2));
        }
        // The telemetry database's dictionary, so that readings under a new name are in
        // sluice_telemetry.readings at once (units come from the app database: never blanked).
        if (auto s = sync_metric_names(ids, found, units); !s) return s.error();
        return out;
    }

    result<std::vector<metric_row>> load_metrics() override {
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        auto q = conn_.query(
            "SELECT id, name, unit, scale, \"offset\", valid_min, valid_max, warn_low, warn_high "
            "FROM sluice_app.metrics ORDER BY id");
        if (!q) return q.error();
        std::vector<metric_row> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i) {
            metric_row m;
            m.id = static_cast<int32_t>(std::stol(std::string(q->get(i, 0))));
            m.name = std::string(q->get(i, 1));
            m.unit = std::string(q->get(i, 2));
            m.scale = std::stod(std::string(q->get(i, 3)));
            m.offset = std::stod(std::string(q->get(i, 4)));
            m.valid_min = opt_double(*q, i, 5);
            m.valid_max = opt_double(*q, i, 6);
            m.warn_low = opt_double(*q, i, 7);
            m.warn_high = opt_double(*q, i, 8);
            out.push_back(std::move(m));
        }
        std::vector<int32_t> ids;
        std::vector<std::string> names, units;
        for (const auto& m : out) {
            ids.push_back(m.id);
            names.push_back(m.name);
            units.push_back(m.unit);
        }
        if (auto s = sync_metric_names(ids, names, units); !s) return s.error();
        return out;
    }

    result<std::vector<device>> load_devices() override {
        mutex_lock lk(mu_);
        if (auto r = conn_.ensure(); !r) return r.error();
        const std::string sql = std::string("SELECT ") + k_device_columns + " FROM sluice_app.devices ORDER BY id";
        auto q = conn_.query(sql.c_str());
        if (!q) return q.error();
        std::vector<device> out;
        out.reserve(static_cast<size_t>(q->rows()));
        for (int i = 0; i < q->rows(); ++i)
            out.push_back(device_at(*q, i));
        if (auto s = sync_device_names(out); !s) return s.error();
        return out;
    }

private:
    static std::string int_array(const std::vector<int32_t>& items) {
        std::string out = "{";
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += ',';
            out += std::to_string(items[i]);
        }
        return out + "}";
    }

    // The connection to the telemetry database's dictionary.
    pg::connection& names_conn() SLUICE_REQUIRES(mu_) { return names_conn_ ? *names_conn_ : conn_; }

    // The dictionary upserts insert with a bare ON CONFLICT DO NOTHING, which arbitrates on
    // both unique indexes (id and name/key), then correct what changed: with ON CONFLICT (id)
    // two workers adding the same rows at once could collide on the name index (23505), since
    // only the arbiter index waits for the other transaction. Rows added by a concurrent
    // worker are not visible to this statement's UPDATE; they carry the same names.
    //
    // Runs a dictionary upsert; a telemetry schema that has no dictionary yet (not migrated
    // to v3, or a registry used without a telemetry store) is not an error.
    result<void> upsert_names(const char* sql, std::initializer_list<pg::param> params) SLUICE_REQUIRES(mu_) {
        if (!names_enabled_) return ok();
        pg::connection& c = names_conn();
        if (auto r = c.ensure(); !r) return r;
        auto q = c.query(sql, params);
        if (!q && q.error() == errc::schema_missing) return ok();
        if (!q) return q.error();
        return ok();
    }

    result<void> sync_device_names(const std::vector<device>& devices) SLUICE_REQUIRES(mu_) {
        if (devices.empty()) return ok();
        std::vector<int32_t> ids;
        std::vector<std::string> keys;
        for (const auto& d : devices) {
            ids.push_back(d.id);
            keys.push_back(d.key);
        }
        return upsert_names(
            "WITH s AS (SELECT * FROM unnest($1::int4[], $2::text[]) AS s(id, key)), "
            "added AS (INSERT INTO sluice_telemetry.device_names (id, key) SELECT id, key FROM s "
            "ON CONFLICT DO NOTHING) "
            "UPDATE sluice_telemetry.device_names n SET key = s.key FROM s WHERE n.id = s.id AND n.key <> s.key",
            {int_array(ids), text_array(keys)});
    }

    result<void> sync_metric_names(const std::vector<int32_t>& ids, const std::vector<std::string>& names,
                                   const std::vector<std::string>& units) SLUICE_REQUIRES(mu_) {
        if (ids.empty()) return ok();
        return upsert_names(
            "WITH s AS (SELECT * FROM unnest($1::int4[], $2::text[], $3::text[]) AS s(id, name, unit)), "
            "added AS (INSERT INTO sluice_telemetry.metric_names (id, name, unit) SELECT id, name, unit FROM s "
            "ON CONFLICT DO NOTHING) "
            "UPDATE sluice_telemetry.metric_names n SET name = s.name, unit = s.unit FROM s "
            "WHERE n.id = s.id AND (n.name, n.unit) IS DISTINCT FROM (s.name, s.unit)",
            {int_array(ids), text_array(names), text_array(units)});
    }

    // Needs conn_ connected.
    result<std::optional<device>> find_locked(const std::string& key) SLUICE_REQUIRES(mu_) {
        const std::string sql = std::string("SELECT ") + k_device_columns + " FROM sluice_app.devices WHERE key = $1";
        auto q = conn_.query(sql.c_str(), {key});
        if (!q) return q.error();
        if (q->rows() == 0) return std::optional<device>{};
        return std::optional<device>{device_at(*q, 0)};
    }

    sluice::mutex mu_;  // one statement sequence at a time on the connections
    pg::connection conn_ SLUICE_GUARDED_BY(mu_);
    std::unique_ptr<pg::connection> names_conn_
        SLUICE_PT_GUARDED_BY(mu_);  // telemetry database, when not the app database
    bool names_enabled_ = false;
};

}  // namespace

result<std::unique_ptr<registry>> open_registry(const store_options& options) {
    if (options.app_url.empty()) return errc::invalid_argument;
    auto reg = std::make_unique<pg_registry>(options);
    if (auto r = reg->migrate(); !r) return r.error();
    return std::unique_ptr<registry>(std::move(reg));
}

}  // namespace sluice::store
