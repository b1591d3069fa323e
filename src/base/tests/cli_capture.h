// SPDX-License-Identifier: Apache-2.0
//
// For the tests of each command's parser (sluice, sluice-loadgen): one parse with its
// stdout and stderr captured, so a test reads what it printed beside what it returned.
#pragma once

#include <sstream>
#include <string>
#include <utility>

namespace sluice::cli {

template <typename Line>
struct captured {
    Line line;
    std::string out;
    std::string err;
};

// `parse(out, err)` runs the parser, printing on the two streams given.
template <typename Parse>
auto capture(Parse&& parse) {
    std::ostringstream out;
    std::ostringstream err;
    auto line = std::forward<Parse>(parse)(out, err);
    return captured<decltype(line)>{std::move(line), out.str(), err.str()};
}

}  // namespace sluice::cli
