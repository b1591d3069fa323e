// SPDX-License-Identifier: Apache-2.0
//
// One snapshot of every part's metrics, gathered once per request and rendered two ways:
// as a Prometheus text exposition (format 0.0.4) for GET /metrics, and read by value for
// the /api/overview digest (http/overview.h). Names are given without the `sluice_` prefix,
// which the exposition adds to every one.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::http {

class metrics_snapshot {
public:
    using labels = std::vector<std::pair<std::string, std::string>>;

    // Adds a sample. Samples keep the order they were added in; a family's HELP and type
    // are those of its first sample.
    void counter(std::string_view name, std::string_view help, double value, const labels& l = {}) {
        add(name, help, "counter", value, l);
    }
    void gauge(std::string_view name, std::string_view help, double value, const labels& l = {}) {
        add(name, help, "gauge", value, l);
    }

    // The values of every sample of family `name`, in the order added; empty when absent.
    std::vector<double> values(std::string_view name) const;

    // The exposition: one HELP/TYPE header per family (before its first sample), then
    // the samples with their labels.
    std::string prometheus_text() const;

private:
    struct family {
        std::string name;
        std::string help;
        std::string_view type;
    };
    struct sample {
        size_t family;
        labels l;
        double value;
    };
    void add(std::string_view name, std::string_view help, std::string_view type, double value, const labels& l);

    std::vector<family> families_;
    std::vector<sample> samples_;
};

}  // namespace sluice::http
