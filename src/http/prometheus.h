// SPDX-License-Identifier: Apache-2.0
//
// Builds a Prometheus text exposition (format 0.0.4): one HELP/TYPE header per family,
// then samples with optional labels. Keeps names consistent: every metric is
// prefixed `sluice_`.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::http {

class prometheus_writer {
public:
    using labels = std::vector<std::pair<std::string, std::string>>;

    void counter(std::string_view name, std::string_view help, double value, const labels& l = {}) {
        sample(name, help, "counter", value, l);
    }
    void gauge(std::string_view name, std::string_view help, double value, const labels& l = {}) {
        sample(name, help, "gauge", value, l);
    }
    const std::string& text() const { return out_; }

private:
    void sample(std::string_view name, std::string_view help, std::string_view type, double value, const labels& l);

    std::string out_;
    std::set<std::string, std::less<>> declared_;
};

}  // namespace sluice::http
