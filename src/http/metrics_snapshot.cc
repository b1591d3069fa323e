// SPDX-License-Identifier: Apache-2.0
#include "http/metrics_snapshot.h"

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

void metrics_snapshot::add(std::string_view name, std::string_view help, std::string_view type, double value,
                           const labels& l) {
    size_t f = 0;
    while (f < families_.size() && families_[f].name != name)
        ++f;
    if (f == families_.size()) families_.push_back(family{std::string(name), std::string(help), type});
    samples_.push_back(sample{f, l, value});
}

std::vector<double> metrics_snapshot::values(std::string_view name) const {
    std::vector<double> out;
    for (const auto& s : samples_) {
        if (families_[s.family].name == name) out.push_back(s.value);
    }
    return out;
}

std::string metrics_snapshot::prometheus_text() const {
    std::string out;
    std::vector<bool> declared(families_.size(), false);
    for (const auto& s : samples_) {
        const family& f = families_[s.family];
        const std::string full = "sluice_" + f.name;
        if (!declared[s.family]) {
            declared[s.family] = true;
            out += "# HELP " + full + " " + f.help + "\n";
            out += "# TYPE " + full + " " + std::string(f.type) + "\n";
        }
        out += full;
        if (!s.l.empty()) {
            out += '{';
            for (size_t i = 0; i < s.l.size(); ++i) {
                if (i) out += ',';
                out += s.l[i].first + "=\"";
                append_escaped(out, s.l[i].second);
                out += '"';
            }
            out += '}';
        }
        char buf[64];
        if (std::isnan(s.value)) {
            std::snprintf(buf, sizeof buf, " NaN\n");
        } else if (s.value == std::floor(s.value) && std::fabs(s.value) < 1e15) {
            std::snprintf(buf, sizeof buf, " %.0f\n", s.value);
        } else {
            std::snprintf(buf, sizeof buf, " %.15g\n", s.value);
        }
        out += buf;
    }
    return out;
}

}  // namespace sluice::http
