// SPDX-License-Identifier: Apache-2.0
#include "auth/password_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

namespace sluice::auth {
namespace {

std::string base64_encode(const unsigned char* data, size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
    out.resize(static_cast<size_t>(len));
    return out;
}

// Standard base64 with or without padding (mosquitto writes the salt unpadded).
bool base64_decode(std::string_view in, std::string& out) {
    std::string padded(in);
    while (padded.size() % 4 != 0)
        padded.push_back('=');
    if (padded.empty()) return false;
    out.assign(3 * padded.size() / 4, '\0');
    int len = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                              reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
    if (len < 0) return false;
    size_t pad = 0;
    for (size_t i = padded.size(); i > 0 && padded[i - 1] == '='; --i)
        ++pad;
    out.resize(static_cast<size_t>(len) - pad);
    return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    for (;;) {
        size_t pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            parts.push_back(s.substr(start));
            return parts;
        }
        parts.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

bool pbkdf2(std::string_view password, const std::string& salt, uint32_t iterations, unsigned char* out,
            size_t out_len) {
    return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                             reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                             static_cast<int>(iterations), EVP_sha512(), static_cast<int>(out_len), out) == 1;
}

bool equal_digest(const unsigned char* a, const std::string& b, size_t n) {
    return b.size() == n && CRYPTO_memcmp(a, b.data(), n) == 0;
}

}  // namespace

std::string hash_password(std::string_view password, uint32_t iterations) {
    unsigned char salt[k_salt_bytes];
    if (RAND_bytes(salt, sizeof salt) != 1) return {};
    std::string salt_s(reinterpret_cast<const char*>(salt), sizeof salt);
    unsigned char digest[64];
    if (!pbkdf2(password, salt_s, iterations, digest, sizeof digest)) return {};
    return "$7$" + std::to_string(iterations) + "$" + base64_encode(salt, sizeof salt) + "$" +
           base64_encode(digest, sizeof digest);
}

bool verify_password(std::string_view password, std::string_view encoded) {
    auto parts = split(encoded, '$');
    // "$7$it$salt$hash" splits into "", "7", it, salt, hash.
    if (parts.size() == 5 && parts[0].empty() && parts[1] == "7") {
        uint32_t iterations = 0;
        for (char c : parts[2]) {
            if (c < '0' || c > '9' || iterations > 100'000'000) return false;
            iterations = iterations * 10 + static_cast<uint32_t>(c - '0');
        }
        if (iterations == 0) return false;
        std::string salt, expected;
        if (!base64_decode(parts[3], salt) || !base64_decode(parts[4], expected) || expected.size() != 64) return false;
        unsigned char digest[64];
        if (!pbkdf2(password, salt, iterations, digest, sizeof digest)) return false;
        return equal_digest(digest, expected, sizeof digest);
    }
    if (parts.size() == 4 && parts[0].empty() && parts[1] == "6") {
        std::string salt, expected;
        if (!base64_decode(parts[2], salt) || !base64_decode(parts[3], expected)) return false;
        unsigned char digest[SHA512_DIGEST_LENGTH];
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha512(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
                  EVP_DigestUpdate(ctx, salt.data(), salt.size()) == 1 && EVP_DigestFinal_ex(ctx, digest, nullptr) == 1;
        EVP_MD_CTX_free(ctx);
        return ok && equal_digest(digest, expected, sizeof digest);
    }
    return false;
}

std::string password_file::load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return path + ": " + std::strerror(errno);
    std::stringstream ss;
    ss << f.rdbuf();
    return parse(ss.str(), path);
}

std::string password_file::parse(std::string_view text, const std::string& name) {
    lines_.clear();
    users_.clear();
    size_t line_no = 0;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view l = text.substr(start, end - start);
        start = end + 1;
        ++line_no;
        while (!l.empty() && (l.back() == '\r' || l.back() == ' ' || l.back() == '\t'))
            l.remove_suffix(1);
        if (l.empty() || l.front() == '#') {
            lines_.push_back({{}, std::string(l)});
            continue;
        }
        size_t colon = l.find(':');
        if (colon == 0 || colon == std::string_view::npos || colon + 1 == l.size()) {
            return name + ":" + std::to_string(line_no) + ": expected username:hash";
        }
        std::string user(l.substr(0, colon));
        std::string hash(l.substr(colon + 1));
        if (users_.count(user) != 0) return name + ":" + std::to_string(line_no) + ": duplicate user " + user;
        users_[user] = hash;
        lines_.push_back({user, {}});
    }
    return {};
}

std::string password_file::text() const {
    std::string out;
    for (const auto& l : lines_) {
        if (l.user.empty()) {
            out += l.raw;
        } else {
            out += l.user + ":" + users_.at(l.user);
        }
        out += '\n';
    }
    return out;
}

std::string password_file::save(const std::string& path) const {
    std::string tmp = path + ".tmp";
    struct stat st {};
    mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0600;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return tmp + ": " + std::strerror(errno);
    ::fchmod(fd, mode);
    std::string body = text();
    size_t off = 0;
    while (off < body.size()) {
        ssize_t n = ::write(fd, body.data() + off, body.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::string err = tmp + ": " + std::strerror(errno);
            ::close(fd);
            return err;
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) return tmp + ": " + std::strerror(errno);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) return path + ": " + std::strerror(errno);
    return {};
}

const std::string* password_file::find(std::string_view user) const {
    auto it = users_.find(std::string(user));
    return it == users_.end() ? nullptr : &it->second;
}

void password_file::set(const std::string& user, const std::string& encoded) {
    if (users_.count(user) == 0) lines_.push_back({user, {}});
    users_[user] = encoded;
}

bool password_file::erase(std::string_view user) {
    auto it = users_.find(std::string(user));
    if (it == users_.end()) return false;
    users_.erase(it);
    for (auto l = lines_.begin(); l != lines_.end(); ++l) {
        if (l->user == user) {
            lines_.erase(l);
            break;
        }
    }
    return true;
}

}  // namespace sluice::auth
