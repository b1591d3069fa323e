// SPDX-License-Identifier: Apache-2.0
//
// The routes of the JSON query API and the dashboard's static files (docs/http-api.md
// lists every route with an example). They exist so that people watching a fleet can
// see, without Grafana, whether data is flowing and landing: /api/overview digests the
// metrics snapshot (http/overview.h) for the dashboard, which polls it every second, and
// /api/devices, /api/metrics, /api/telemetry and /api/dead-letters ask the store's read
// interface (store/query.h), which owns the SQL; /api/cluster asks the bus who owns which
// partition and the store how far each is stored. Handlers check their parameters, ask,
// and render the answer (http/query_json.h); they run on the HTTP server's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "http/cluster.h"
#include "http/metrics_snapshot.h"
#include "store/query.h"

namespace sluice::http {

class server;

struct api_config {
    // The database routes' source of answers; null: they answer 503.
    std::unique_ptr<store::telemetry_query> query;
    // The current metrics (what GET /metrics renders); called on the HTTP thread once
    // per GET /api/overview.
    std::function<metrics_snapshot()> metrics;
    // The consumer group and partitions (GET /api/cluster), without stored offsets, which
    // the route asks `query` for; called on the HTTP thread. Null: the route answers 404.
    std::function<result<cluster_view>()> cluster;
    // Directory with index.html, app.js, style.css; empty: no static routes.
    std::string web_root;
};

// Registers GET /api/overview, /api/devices, /api/metrics, /api/telemetry,
// /api/dead-letters, /api/cluster, and (when cfg.web_root is set) GET / and GET /static/*.
// REQUIRES: called before s.start(). The routes share state that lives as long as `s`.
void register_api(server& s, api_config cfg);

}  // namespace sluice::http
