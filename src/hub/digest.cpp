// SPDX-License-Identifier: Apache-2.0
#include "hub/digest.h"

#include "common/error.h"
#include "common/interrupt.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <vector>

namespace rabbit {

struct Digest::Impl {
    EVP_MD_CTX* ctx = nullptr;
};

Digest::Digest(Kind kind) : impl_(std::make_unique<Impl>()) {
    impl_->ctx = EVP_MD_CTX_new();
    RABBIT_CHECK(impl_->ctx != nullptr, "EVP_MD_CTX_new failed");
    const EVP_MD* md = kind == Kind::sha256 ? EVP_sha256() : EVP_sha1();
    RABBIT_CHECK(EVP_DigestInit_ex(impl_->ctx, md, nullptr) == 1, "EVP_DigestInit_ex failed");
}

Digest::~Digest() { EVP_MD_CTX_free(impl_->ctx); }

void Digest::update(const void* data, size_t n) {
    RABBIT_CHECK(EVP_DigestUpdate(impl_->ctx, data, n) == 1, "EVP_DigestUpdate failed");
}

std::string Digest::hex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    RABBIT_CHECK(EVP_DigestFinal_ex(impl_->ctx, out, &n) == 1, "EVP_DigestFinal_ex failed");
    static const char* digits = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < n; ++i) {
        text += digits[out[i] >> 4];
        text += digits[out[i] & 15];
    }
    return text;
}

namespace {

std::string git_header(uint64_t size) { return "blob " + std::to_string(size) + std::string(1, '\0'); }

// Feeds the file's bytes to D; returns its size.
uint64_t digest_file(const std::string& path, Digest& d, bool git_blob) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw bad_input(path, "cannot open it to check its checksum: " + errno_text(errno));
    if (git_blob) {
        std::fseek(f, 0, SEEK_END);
        const std::string h = git_header(uint64_t(std::ftell(f)));
        std::fseek(f, 0, SEEK_SET);
        d.update(h.data(), h.size());
    }
    std::vector<char> buf(1 << 20);
    uint64_t total = 0;
    for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), f)) > 0;) {
        d.update(buf.data(), n);
        total += n;
        throw_if_interrupted();
    }
    const bool bad = std::ferror(f);
    std::fclose(f);
    if (bad) throw bad_input(path, "read error while checking its checksum");
    return total;
}

} // namespace

std::string sha256_hex(const std::string& data) {
    Digest d(Digest::Kind::sha256);
    d.update(data.data(), data.size());
    return d.hex();
}

std::string git_blob_sha1_hex(const std::string& data) {
    Digest d(Digest::Kind::sha1);
    const std::string h = git_header(data.size());
    d.update(h.data(), h.size());
    d.update(data.data(), data.size());
    return d.hex();
}

std::string sha256_file(const std::string& path) {
    Digest d(Digest::Kind::sha256);
    digest_file(path, d, false);
    return d.hex();
}

std::string git_blob_sha1_file(const std::string& path) {
    Digest d(Digest::Kind::sha1);
    digest_file(path, d, true);
    return d.hex();
}

} // namespace rabbit
