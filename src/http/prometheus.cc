// SPDX-License-Identifier: Apache-2.0
#include "http/prometheus.h"

#include <cmath>
#include <cstdio>

namespace sluice::http {
namespace {

void append_escaped(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\' || c == '"') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
}

}  // namespace

void prometheus_writer::sample(std::string_view name, std::string_view help, std::string_view type, double value,
                               const labels& l) {
    std::string full = "sluice_" + std::string(name);
    if (declared_.insert(full).second) {
        out_ += "# HELP " + full + " " + std::string(help) + "\n";
        out_ += "# TYPE " + full + " " + std::string(type) + "\n";
    }
    out_ += full;
    if (!l.empty()) {
        out_ += '{';
        for (size_t i = 0; i < l.size(); ++i) {
            if (i) out_ += ',';
            out_ += l[i].first + "=\"";
            append_escaped(out_, l[i].second);
            out_ += '"';
        }
        out_ += '}';
    }
    char buf[64];
    if (std::isnan(value)) {
        std::snprintf(buf, sizeof buf, " NaN\n");
    } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
        std::snprintf(buf, sizeof buf, " %.0f\n", value);
    } else {
        std::snprintf(buf, sizeof buf, " %.15g\n", value);
    }
    out_ += buf;
}

}  // namespace sluice::http
