// SPDX-License-Identifier: Apache-2.0
// HTTP for the hub, over libcurl: small GETs into memory (the API's JSON), and downloads that
// append a byte range to a file (resumed transfers). Redirects are followed; the token goes in
// an Authorization header (libcurl drops it on a redirect to another host) and is never logged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace rabbit {

struct HttpReply {
    long status = 0;
    std::map<std::string, std::string> headers; // the last response's, names in lowercase
    std::string body;
};

// What a transfer that got no complete answer ended with.
struct TransferFailure {
    enum class Kind { none, no_network, dropped, aborted, write_error } kind = Kind::none;
    std::string text;  // libcurl's words, for the message
    int write_errno = 0; // for write_error
};

class HttpClient {
public:
    explicit HttpClient(std::string token);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // GET (or HEAD) URL into memory. FAILURE says why no reply came (status stays 0).
    HttpReply get(const std::string& url, TransferFailure& failure, bool head = false);

    // GET URL from byte OFFSET on, appending what arrives to FD (positioned at OFFSET).
    // ON_BYTES sees each piece's size; returning false aborts the transfer.
    HttpReply fetch_range(const std::string& url, uint64_t offset, int fd, const std::function<bool(uint64_t)>& on_bytes,
                          TransferFailure& failure);

    // Bytes FIRST..LAST (inclusive) of URL into memory: a safetensors header before its data.
    HttpReply get_range(const std::string& url, uint64_t first, uint64_t last, TransferFailure& failure);

    // Seconds without a byte after which a transfer counts as dropped (RABBIT_HUB_STALL_S).
    void set_stall_seconds(long s) { stall_s_ = s; }

private:
    HttpReply perform(const std::string& url, const std::string& range, uint64_t offset, int fd, bool head, const std::function<bool(uint64_t)>& on_bytes,
                      TransferFailure& failure);
    std::string auth_header_;
    long stall_s_ = 30;
    void* curl_ = nullptr;
};

} // namespace rabbit
