// SPDX-License-Identifier: Apache-2.0
// The checksums the hub publishes for its files: the sha256 of an LFS file's bytes, and the git
// blob sha1 ("blob SIZE\0" then the bytes) of a small file stored in git, which is its ETag.
// Through OpenSSL's EVP interface (Debian's libssl-dev; libcurl links OpenSSL anyway).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rabbit {

class Digest {
public:
    enum class Kind { sha256, sha1 };
    explicit Digest(Kind kind);
    ~Digest();
    Digest(const Digest&) = delete;
    Digest& operator=(const Digest&) = delete;

    void update(const void* data, size_t n);
    std::string hex(); // lowercase; ends the digest

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(const std::string& data);
std::string git_blob_sha1_hex(const std::string& data);
// Of a file's whole content, read in pieces. Throw bad_input when it cannot be read.
std::string sha256_file(const std::string& path);
std::string git_blob_sha1_file(const std::string& path);

} // namespace rabbit
