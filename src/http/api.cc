// SPDX-License-Identifier: Apache-2.0
//
// Routes of the JSON query API: parameter checks, one question to the store's read
// interface, the answer rendered as JSON; errors mapped to the statuses of
// docs/http-api.md. The database's own message never reaches the client: it can name
// tables, columns and values of other devices (issue 12); the store logs it.
#include "http/api.h"

#include <charconv>
#include <optional>
#include <string_view>
#include <utility>

#include "base/clock.h"
#include "base/log.h"
#include "http/errc.h"
#include "http/json.h"
#include "http/overview.h"
#include "http/query_json.h"
#include "http/server.h"
#include "http/static_files.h"

namespace sluice::http {
namespace {

using param = std::optional<std::string>;

response json_response(int status, std::string body) {
    response r;
    r.status = status;
    r.content_type = "application/json; charset=utf-8";
    r.body = std::move(body);
    r.body += '\n';
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

response error_response(std::error_code ec, std::string_view detail) {
    int status = 500;
    if (ec == api_errc::database_unavailable || ec == api_errc::query_timeout) status = 503;
    if (ec == api_errc::bad_request) status = 400;
    std::string body = "{\"error\":" + json_string(ec.message());
    if (!detail.empty()) body += ",\"detail\":" + json_string(detail);
    body += '}';
    return json_response(status, std::move(body));
}

response bad_request(std::string_view detail) {
    return error_response(api_errc::bad_request, detail);
}

// A store error as the API's answer.
response store_error(std::error_code ec) {
    api_errc e = api_errc::query_failed;
    if (ec == store::errc::connection_failed) e = api_errc::database_unavailable;
    if (ec == store::errc::timeout) e = api_errc::query_timeout;
    if (ec == store::errc::invalid_data) e = api_errc::bad_request;
    SLUICE_WARN("http", "query failed (%s): %s", make_error_code(e).message().c_str(), ec.message().c_str());
    return error_response(e, {});
}

// A query parameter; absent and empty are the same (nullopt).
param query_param(const request& req, const char* name) {
    auto it = req.query.find(name);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    return it->second;
}

// An integer parameter in [lo, hi], `def` when absent.
result<int> int_param(const request& req, const char* name, int def, int lo, int hi) {
    auto p = query_param(req, name);
    if (!p) return def;
    int v = 0;
    const std::string& text = *p;
    const char* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), last, v);
    if (ec != std::errc{} || ptr != last || v < lo || v > hi) return api_errc::bad_request;
    return v;
}

// Bytes of each dead letter's payload sent as a preview.
constexpr int k_payload_preview = 1024;

struct api_state {
    api_config cfg;

    explicit api_state(api_config c) : cfg(std::move(c)) {}

    response overview() {
        return json_response(200, overview_json(cfg.metrics ? cfg.metrics() : metrics_snapshot{}, unix_ms()));
    }

    response devices(const request& req) {
        auto limit = int_param(req, "limit", 200, 1, 1000);
        if (!limit) return bad_request("limit must be an integer in 1..1000");
        if (!cfg.query) return store_error(store::errc::connection_failed);
        auto d = cfg.query->devices(*limit);
        if (!d) return store_error(d.error());
        return json_response(200, devices_json(*d));
    }

    response metrics(const request& req) {
        if (!cfg.query) return store_error(store::errc::connection_failed);
        auto device = query_param(req, "device");
        auto m = cfg.query->metrics(device ? std::optional<std::string_view>(*device) : std::nullopt);
        if (!m) return store_error(m.error());
        return json_response(200, metrics_json(*m));
    }

    response telemetry(const request& req) {
        auto device = query_param(req, "device");
        auto metric = query_param(req, "metric");
        if (!device || !metric) return bad_request("device and metric are required");
        std::string resolution = query_param(req, "resolution").value_or("raw");
        store::series_request sr{*device, *metric, query_param(req, "from"), query_param(req, "to")};
        if (resolution == "1h") {
            sr.resolution = store::series_resolution::hour;
        } else if (resolution == "1d") {
            sr.resolution = store::series_resolution::day;
        } else if (resolution != "raw") {
            return bad_request("resolution must be raw, 1h or 1d");
        }
        auto limit = int_param(req, "limit", 10000, 1, 10000);
        if (!limit) return bad_request("limit must be an integer in 1..10000");
        sr.limit = *limit;
        if (!cfg.query) return store_error(store::errc::connection_failed);
        auto s = cfg.query->read_series(sr);
        if (!s) {
            if (s.error() == store::errc::invalid_argument)
                return bad_request("from and to must be ISO 8601 timestamps");
            return store_error(s.error());
        }
        switch (s->status) {
            case store::series::lookup::unknown_device:
                return json_response(404, "{\"error\":\"unknown device\",\"device\":" + json_string(*device) + "}");
            case store::series::lookup::unknown_metric:
                return json_response(404, "{\"error\":\"unknown metric\",\"metric\":" + json_string(*metric) + "}");
            case store::series::lookup::found:
                break;
        }
        return json_response(200, series_json(*device, *metric, resolution, *s));
    }

    response dead_letters(const request& req) {
        auto limit = int_param(req, "limit", 50, 1, 500);
        if (!limit) return bad_request("limit must be an integer in 1..500");
        if (!cfg.query) return store_error(store::errc::connection_failed);
        auto d = cfg.query->dead_letters(*limit, k_payload_preview);
        if (!d) return store_error(d.error());
        return json_response(200, dead_letters_json(*d, k_payload_preview));
    }

    // The group as the bus describes it, with the offsets stored in the database (the
    // answer stays useful while the database is down: those are then null).
    response cluster(const request& req) {
        auto format = query_param(req, "format").value_or("json");
        if (format != "json" && format != "text") return bad_request("format must be json or text");
        if (!cfg.cluster) return json_response(404, "{\"error\":\"no cluster view\"}");
        auto v = cfg.cluster();
        if (!v) {
            SLUICE_WARN("http", "cluster view: %s", v.error().message().c_str());
            return json_response(503, "{\"error\":\"the bus did not describe the group\"}");
        }
        if (cfg.query) {
            auto stored = cfg.query->offsets(v->consumer);
            if (stored) v->stored = std::move(*stored);
        }
        if (format == "text") {
            response r{200, "text/plain; charset=utf-8", cluster_text(*v), {}};
            r.headers.emplace_back("Cache-Control", "no-store");
            return r;
        }
        return json_response(200, cluster_json(*v));
    }
};

}  // namespace

void register_api(server& s, api_config cfg) {
    auto state = std::make_shared<api_state>(std::move(cfg));
    s.route("GET", "/api/overview", [state](const request&) { return state->overview(); });
    s.route("GET", "/api/devices", [state](const request& r) { return state->devices(r); });
    s.route("GET", "/api/metrics", [state](const request& r) { return state->metrics(r); });
    s.route("GET", "/api/telemetry", [state](const request& r) { return state->telemetry(r); });
    s.route("GET", "/api/dead-letters", [state](const request& r) { return state->dead_letters(r); });
    s.route("GET", "/api/cluster", [state](const request& r) { return state->cluster(r); });
    if (!state->cfg.web_root.empty()) {
        s.route("GET", "/",
                [state](const request&) { return static_file_response(state->cfg.web_root, "index.html"); });
        s.route("GET", "/static/*", [state](const request& r) {
            return static_file_response(state->cfg.web_root,
                                        std::string_view(r.path).substr(std::string_view("/static/").size()));
        });
    }
}

}  // namespace sluice::http
