// SPDX-License-Identifier: Apache-2.0
//
// Mosquitto's password file, read and written byte-compatibly so that a site moving from
// mosquitto keeps its files and `mosquitto_passwd` and `sluice passwd` can edit the same
// file. One `username:hash` per line; blank lines and lines starting with '#' are kept
// when the file is rewritten. Hash formats (docs/security.md):
//   $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations, 64)>
//   $6$<base64 salt>$<base64 SHA512(password || salt)>   (mosquitto < 2.0; verify only)
// Every function here is pure or touches only the file named; nothing is cached.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::auth {

// mosquitto_passwd's defaults (mosquitto 2.0): 12 random salt bytes, 101 iterations.
constexpr uint32_t k_default_iterations = 101;
constexpr size_t k_salt_bytes = 12;

// A `$7$` hash of `password` with a fresh random salt. Returns "" if the system's random
// source fails.
std::string hash_password(std::string_view password, uint32_t iterations = k_default_iterations);

// Does `password` match `encoded` ($7$ or $6$)? Constant-time in the digest comparison.
// Unknown formats never match.
bool verify_password(std::string_view password, std::string_view encoded);

// The parsed file: user -> encoded hash, plus the lines in file order for rewriting.
class password_file {
public:
    // Reads `path`. Returns "" on success, else a message naming the file and line.
    std::string load(const std::string& path);
    // Parses `text` (the file's contents); `name` is used in messages.
    std::string parse(std::string_view text, const std::string& name);
    // Writes the file atomically (temp file + rename), mode 0600 for a new file.
    std::string save(const std::string& path) const;

    const std::string* find(std::string_view user) const;
    void set(const std::string& user, const std::string& encoded);
    bool erase(std::string_view user);
    size_t size() const { return users_.size(); }
    std::string text() const;

private:
    struct line {
        std::string user;  // empty: a comment or blank line kept verbatim in `raw`
        std::string raw;
    };
    std::vector<line> lines_;
    std::unordered_map<std::string, std::string> users_;
};

}  // namespace sluice::auth
