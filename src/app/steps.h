// SPDX-License-Identifier: Apache-2.0
//
// An ordered list of start/stop steps: the parts of a process start in list order and stop
// in reverse, and the same list serves the normal shutdown and every failed start, so a
// part that started is stopped on every path and one that did not is never touched.
#pragma once

#include <cstddef>
#include <functional>
#include <utility>
#include <vector>

#include "base/log.h"

namespace sluice::app {

struct step {
    const char* name;            // for the debug log
    std::function<int()> start;  // 0, or the exit status to give up with (the step logged why)
    std::function<void()> stop;  // may be empty: nothing to undo
};

class steps {
public:
    explicit steps(std::vector<step> list) : list_(std::move(list)) {}
    steps(const steps&) = delete;
    steps& operator=(const steps&) = delete;
    ~steps() { stop(); }

    // Starts each step in order. When one fails, stops those already started (in reverse)
    // and returns its status; 0 when all started.
    int start() {
        for (const step& s : list_) {
            SLUICE_DEBUG("app", "starting %s", s.name);
            if (int status = s.start(); status != 0) {
                stop();
                return status;
            }
            ++started_;
        }
        return 0;
    }

    // Stops the started steps, last first. Idempotent.
    void stop() {
        for (; started_ > 0; --started_) {
            const step& s = list_[started_ - 1];
            if (!s.stop) continue;
            SLUICE_DEBUG("app", "stopping %s", s.name);
            s.stop();
        }
    }

private:
    std::vector<step> list_;
    size_t started_ = 0;
};

}  // namespace sluice::app
