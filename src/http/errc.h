// SPDX-License-Identifier: Apache-2.0
//
// Error codes of the HTTP API, each of which the routes answer with its own status
// (docs/http-api.md): database_unavailable and query_timeout 503, bad_request 400,
// query_failed 500; unsafe_path is a static path refused before the file system is asked.
#pragma once

#include <system_error>

namespace sluice::http {

enum class api_errc {
    database_unavailable = 1,  // no connection could be made (or the URL is empty)
    query_failed,              // the server reported an error for the query
    query_timeout,             // statement_timeout cancelled the query
    bad_request,               // a parameter the server rejected (e.g. an invalid timestamp)
    unsafe_path,               // a static path with '..', '.', an empty segment, '\\' or NUL
};
const std::error_category& api_category();
std::error_code make_error_code(api_errc e);

}  // namespace sluice::http

namespace std {
template <>
struct is_error_code_enum<sluice::http::api_errc> : true_type {};
}  // namespace std
